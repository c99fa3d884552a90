'use strict';
// Actions (creates) and searches: report a won deal, find or create a customer, draft, issue
// and collect invoices; find an invoice or a customer. Each calls one documented route of
// Puente's API (/api/docs) and hands its answer to the next steps of the Zap.

const { api } = require('./client');

const ADDRESS_FIELDS = [
  { key: 'customer_street', label: 'Dirección del cliente (calle y número)' },
  { key: 'customer_postal_code', label: 'Código postal' },
  { key: 'customer_city', label: 'Población' },
  { key: 'customer_province', label: 'Provincia' },
  { key: 'customer_country', label: 'País (código ISO de 2 letras)', default: 'ES' },
];
const CUSTOMER_FIELDS = [
  { key: 'customer_name', label: 'Razón social del cliente', required: true },
  { key: 'customer_tax_id', label: 'NIF/CIF del cliente', required: true,
    helpText: 'Con él Puente encuentra al cliente, o lo crea si no existe.' },
  { key: 'customer_email', label: 'Correo del cliente' },
  ...ADDRESS_FIELDS,
];
const LINE_FIELDS = {
  key: 'lines',
  label: 'Líneas',
  required: true,
  children: [
    { key: 'description', label: 'Descripción', required: true },
    { key: 'quantity', label: 'Cantidad', required: true },
    { key: 'unit_price', label: 'Precio unitario sin IVA', required: true },
    { key: 'discount_percent', label: 'Descuento %' },
    { key: 'tax_rate', label: 'IVA %', required: true, helpText: '21, 10, 4 o 0' },
    { key: 'sku', label: 'Referencia (SKU)' },
  ],
};

const present = (value) => value !== undefined && value !== null && value !== '';
const pick = (object) => Object.fromEntries(Object.entries(object).filter(([, v]) => present(v)));

const customerOf = (input) => {
  const address = pick({
    street: input.customer_street,
    postal_code: input.customer_postal_code,
    city: input.customer_city,
    province: input.customer_province,
    country: input.customer_country,
  });
  return pick({
    name: input.customer_name,
    tax_id: input.customer_tax_id,
    email: input.customer_email,
    address: Object.keys(address).length ? address : undefined,
  });
};

const linesOf = (input) => (input.lines || []).map((line) => {
  const taken = pick(line);
  if (present(taken.tax_rate)) taken.tax_rate = Number(taken.tax_rate);
  return taken;
});

const post = async (z, bundle, path, body) => {
  const response = await z.request({ url: api(bundle, path), method: 'POST', body });
  return response.data;
};

const SAMPLE_INVOICE = {
  id: 7, status: 'draft', number: null, external_ref: 'D-1001',
  customer: { id: 3, name: 'Acme Soluciones SL', tax_id: 'B12345674' },
  totals: { base: '2480.50', tax: '520.91', total: '3001.41' },
};

const creates = [
  {
    key: 'report_won_deal',
    noun: 'Deal',
    display: {
      label: 'Registrar oportunidad ganada',
      description: 'Envía una oportunidad ganada a Puente: los flujos de "Oportunidad ganada (Zapier, Make o API)" la convierten en factura. (Report a won deal.)',
    },
    operation: {
      inputFields: [
        { key: 'deal_id', label: 'Id de la oportunidad', required: true,
          helpText: 'Una factura por oportunidad: enviar la misma dos veces no factura dos veces.' },
        { key: 'title', label: 'Título' },
        { key: 'won_at', label: 'Ganada el', type: 'datetime', required: true },
        { key: 'currency', label: 'Moneda', default: 'EUR' },
        ...CUSTOMER_FIELDS,
        LINE_FIELDS,
      ],
      perform: async (z, bundle) => {
        const input = bundle.inputData;
        const deal = pick({
          deal_id: String(input.deal_id),
          source: 'zapier',
          title: input.title,
          won_at: input.won_at,
          currency: input.currency || 'EUR',
          customer: customerOf(input),
          lines: linesOf(input),
        });
        const answer = await post(z, bundle, '/triggers/deal_won/events', deal);
        return { id: answer.event_ids[0], ...answer };
      },
      sample: { id: 41, run_ids: [12], event_ids: [41], duplicate: false },
    },
  },
  {
    key: 'find_or_create_customer',
    noun: 'Customer',
    display: {
      label: 'Buscar o crear cliente',
      description: 'Busca el cliente por su NIF y lo crea si no existe. (Find or create a customer.)',
    },
    operation: {
      inputFields: CUSTOMER_FIELDS,
      perform: (z, bundle) => post(z, bundle, '/customers', customerOf(bundle.inputData)),
      sample: { id: 3, name: 'Acme Soluciones SL', tax_id: 'B12345674', created: true },
    },
  },
  {
    key: 'create_draft_invoice',
    noun: 'Invoice',
    display: {
      label: 'Crear factura en borrador',
      description: 'Crea una factura en borrador con sus líneas, para revisarla y emitirla. (Create a draft invoice.)',
    },
    operation: {
      inputFields: [
        ...CUSTOMER_FIELDS,
        LINE_FIELDS,
        { key: 'external_ref', label: 'Id de la oportunidad en el CRM',
          helpText: 'Con él, la misma oportunidad no crea una segunda factura.' },
        { key: 'notes', label: 'Notas' },
      ],
      perform: (z, bundle) => {
        const input = bundle.inputData;
        return post(z, bundle, '/invoices', pick({
          customer: customerOf(input),
          lines: linesOf(input),
          external_ref: input.external_ref,
          source: present(input.external_ref) ? 'zapier' : undefined,
          notes: input.notes,
        }));
      },
      sample: SAMPLE_INVOICE,
    },
  },
  {
    key: 'issue_invoice',
    noun: 'Invoice',
    display: {
      label: 'Emitir factura',
      description: 'Da número, fecha y registro VERI*FACTU a una factura en borrador. (Issue an invoice.)',
    },
    operation: {
      inputFields: [{ key: 'invoice_id', label: 'Id de la factura', required: true, type: 'integer' }],
      perform: (z, bundle) => post(z, bundle, `/invoices/${Number(bundle.inputData.invoice_id)}/issue`, {}),
      sample: { ...SAMPLE_INVOICE, status: 'issued', number: 'F2026-00042' },
    },
  },
  {
    key: 'record_payment',
    noun: 'Payment',
    display: {
      label: 'Registrar cobro',
      description: 'Anota un cobro (total o parcial) de una factura emitida. (Record a payment.)',
    },
    operation: {
      inputFields: [
        { key: 'invoice_id', label: 'Id de la factura', required: true, type: 'integer' },
        { key: 'amount', label: 'Importe cobrado', required: true, helpText: 'Por ejemplo 3001.41' },
        { key: 'paid_on', label: 'Fecha del cobro', type: 'datetime' },
        { key: 'method', label: 'Forma de pago', helpText: 'transfer, card, cash…' },
        { key: 'reference', label: 'Referencia del cobro' },
      ],
      perform: (z, bundle) => {
        const input = bundle.inputData;
        return post(z, bundle, `/invoices/${Number(input.invoice_id)}/payments`, pick({
          amount: String(input.amount),
          paid_on: present(input.paid_on) ? String(input.paid_on).slice(0, 10) : undefined,
          method: input.method,
          reference: input.reference,
        }));
      },
      sample: { ...SAMPLE_INVOICE, status: 'paid', number: 'F2026-00042', payment_id: 5 },
    },
  },
];

const searches = [
  {
    key: 'find_invoice',
    noun: 'Invoice',
    display: {
      label: 'Buscar factura',
      description: 'Busca una factura por su número o por el id de la oportunidad del CRM. (Find an invoice.)',
    },
    operation: {
      inputFields: [
        { key: 'number', label: 'Número de factura', helpText: 'Por ejemplo F2026-00042' },
        { key: 'external_ref', label: 'Id de la oportunidad en el CRM' },
      ],
      perform: async (z, bundle) => {
        const { number, external_ref: ref } = bundle.inputData;
        if (!present(number) && !present(ref)) {
          throw new z.errors.Error('Indica el número de factura o el id de la oportunidad. (Give the number or the deal id.)', 'InvalidInput', 400);
        }
        const response = await z.request({
          url: api(bundle, '/invoices'),
          params: pick({ number, external_ref: ref, limit: 10 }),
        });
        return response.data.items;
      },
      sample: SAMPLE_INVOICE,
    },
  },
  {
    key: 'find_customer',
    noun: 'Customer',
    display: {
      label: 'Buscar cliente por NIF',
      description: 'Busca un cliente por su NIF/CIF. (Find a customer by tax id.)',
    },
    operation: {
      inputFields: [{ key: 'tax_id', label: 'NIF/CIF', required: true }],
      perform: async (z, bundle) => {
        const response = await z.request({
          url: api(bundle, '/customers'),
          params: { tax_id: bundle.inputData.tax_id },
        });
        return response.data.items;
      },
      sample: { id: 3, name: 'Acme Soluciones SL', tax_id: 'B12345674' },
    },
  },
];

module.exports = { creates, searches };
