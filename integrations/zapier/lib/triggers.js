'use strict';
// One trigger per Puente event type: a REST hook (Puente POSTs each event, signed), with the
// event list as polling fallback and as samples for the Zap editor (performList).

const { api, verifySignature, flatten } = require('./client');

const EVENTS = [
  ['deal.won', 'Oportunidad ganada registrada', 'Deal won',
    'Se registra en Puente una oportunidad ganada (de un CRM, Zapier, Make o el CRM de Puente).',
    { deal_id: 'D-1001', source: 'hubspot', title: 'Licencias 2027', amount: '2480.50', currency: 'EUR',
      customer_name: 'Acme Soluciones SL', customer_tax_id: 'B12345674', won_at: '2026-12-04T08:58:00+00:00' }],
  ['customer.created', 'Cliente creado', 'Customer created',
    'Se crea un cliente nuevo en la facturación de Puente.',
    { customer_id: 3, tax_id: 'B12345674', name: 'Acme Soluciones SL' }],
  ['invoice.drafted', 'Factura en borrador creada', 'Invoice drafted',
    'Se crea una factura en borrador, pendiente de revisar y emitir.',
    { invoice_id: 7, customer_id: 3, total: '3001.41', external_ref: 'D-1001', source: 'hubspot' }],
  ['invoice.issued', 'Factura emitida', 'Invoice issued',
    'Una factura recibe número, fecha y registro VERI*FACTU.',
    { invoice_id: 7, number: 'F2026-00042', issue_date: '2026-12-04', total: '3001.41', external_ref: 'D-1001' }],
  ['invoice.paid', 'Factura cobrada', 'Invoice paid',
    'Una factura emitida queda cobrada del todo.',
    { invoice_id: 7, number: 'F2026-00042', total: '3001.41', amount_due: '3001.41', paid_on: '2026-12-20' }],
  ['invoice.cancelled', 'Factura anulada', 'Invoice cancelled',
    'Se anula una factura emitida por error (anulación VERI*FACTU).',
    { invoice_id: 7, number: 'F2026-00042' }],
  ['run.failed', 'Ejecución fallida', 'Run failed',
    'Una ejecución de un flujo falla y espera en el registro a que se corrija.',
    { run_id: 12, flow_id: 1, flow_name: 'Oportunidad ganada → borrador', status: 'failed', attempts: 1,
      error: { message: 'customer.tax_id: not a valid NIF' }, url: 'https://puente.example.es/ui/runs/12' }],
];

const key = (type) => type.replace('.', '_');

const trigger = ([type, label, english, description, sample]) => ({
  key: key(type),
  noun: english.split(' ')[0],
  display: {
    label,
    description: `${description} (${english}.)`,
  },
  operation: {
    type: 'hook',
    performSubscribe: async (z, bundle) => {
      const response = await z.request({
        url: api(bundle, '/webhooks'),
        method: 'POST',
        body: { event: type, target_url: bundle.targetUrl },
      });
      return response.data; // {id, event, target_url, secret, ...}: bundle.subscribeData
    },
    performUnsubscribe: async (z, bundle) => {
      await z.request({ url: api(bundle, `/webhooks/${bundle.subscribeData.id}`), method: 'DELETE' });
      return {};
    },
    perform: (z, bundle) => {
      const raw = bundle.rawRequest || {};
      const secret = (bundle.subscribeData || {}).secret;
      if (!secret || !verifySignature(secret, raw.headers || {}, raw.content || '')) {
        throw new z.errors.HaltedError(
          'La firma del aviso no es de Puente: se ha ignorado. (The delivery is not signed by Puente.)');
      }
      return [flatten(bundle.cleanedRequest)];
    },
    performList: async (z, bundle) => {
      const response = await z.request({
        url: api(bundle, '/events'),
        params: { type, limit: 25 },
      });
      return response.data.items.map(flatten);
    },
    sample: { id: 'evt_1', type, created_at: '2026-12-04T10:00:00+00:00', ...sample },
  },
});

module.exports = { EVENTS, triggers: EVENTS.map(trigger), key };
