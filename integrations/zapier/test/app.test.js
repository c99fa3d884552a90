'use strict';
// The Zapier app against a live Puente on 127.0.0.1 (tests/integrations/test_zapier_app.py
// starts it, makes an API key and works the queue while these run): PUENTE_URL, PUENTE_API_KEY.

const assert = require('node:assert/strict');
const http = require('node:http');
const { test, before, after } = require('node:test');
const zapier = require('zapier-platform-core');
const App = require('../index');
const { EVENTS, key } = require('../lib/triggers');

const appTester = zapier.createAppTester(App);
const authData = { base_url: process.env.PUENTE_URL, api_key: process.env.PUENTE_API_KEY };
const CUSTOMER = {
  customer_name: 'Talleres Zapier SL',
  customer_tax_id: 'B10000008',
  customer_email: 'facturas@talleres.example',
  customer_street: 'Calle Mayor 2',
  customer_postal_code: '28013',
  customer_city: 'Madrid',
  customer_province: 'Madrid',
  customer_country: 'ES',
};
const LINES = [{ description: 'Consultoría', quantity: '2', unit_price: '100.00', tax_rate: '21' }];

// A REST hook target on 127.0.0.1: keeps each delivery as Zapier would hand it on.
const received = [];
let server;
let targetUrl;
before(async () => {
  assert.ok(authData.base_url && authData.api_key, 'set PUENTE_URL and PUENTE_API_KEY');
  server = http.createServer((req, res) => {
    let content = '';
    req.on('data', (chunk) => { content += chunk; });
    req.on('end', () => {
      received.push({ headers: req.headers, content });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  targetUrl = `http://127.0.0.1:${server.address().port}/hooks/zap`;
});
after(() => server.close());

const waitFor = async (check, what, seconds = 60) => {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const found = check();
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
};

test('the app definition is valid for Zapier', async () => {
  const result = await zapier.createAppHandler(App)({ command: 'validate' });
  assert.deepEqual(result.results, []);
});

test('the connection test passes with the key and explains a wrong one', async () => {
  const answer = await appTester(App.authentication.test, { authData });
  assert.ok(Array.isArray(answer.items));
  await assert.rejects(
    appTester(App.authentication.test, { authData: { ...authData, api_key: 'pk_wrong' } }),
    /clave de API/,
  );
});

test('every event type has a trigger, by REST hook with a polling fallback', () => {
  const types = EVENTS.map(([type]) => type).sort();
  assert.deepEqual(types, ['customer.created', 'deal.won', 'invoice.cancelled', 'invoice.drafted',
    'invoice.issued', 'invoice.paid', 'run.failed']);
  for (const type of types) {
    const op = App.triggers[key(type)].operation;
    assert.equal(op.type, 'hook');
    for (const fn of ['performSubscribe', 'performUnsubscribe', 'perform', 'performList']) {
      assert.equal(typeof op[fn], 'function', `${type} ${fn}`);
    }
  }
});

test('a hook subscription gets a signed delivery, and unsubscribing stops it', async () => {
  const trigger = App.triggers.customer_created.operation;
  const subscribeData = await appTester(trigger.performSubscribe, { authData, targetUrl });
  assert.ok(subscribeData.id && subscribeData.secret.startsWith('whsec_'));

  const made = await appTester(App.creates.find_or_create_customer.operation.perform,
    { authData, inputData: CUSTOMER });
  assert.equal(made.tax_id, 'B10000008');

  const delivery = await waitFor(() => received.find(
    (r) => JSON.parse(r.content).data.tax_id === 'B10000008'), 'the customer.created delivery');
  const rawRequest = { headers: delivery.headers, content: delivery.content };
  const cleanedRequest = JSON.parse(delivery.content);
  const [item] = await appTester(trigger.perform, { authData, subscribeData, rawRequest, cleanedRequest });
  assert.equal(item.type, 'customer.created');
  assert.match(item.id, /^evt_\d+$/);
  assert.equal(item.customer_id, made.id);

  const forged = { ...rawRequest, content: delivery.content.replace('B10000008', 'B10000016') };
  await assert.rejects(appTester(trigger.perform,
    { authData, subscribeData, rawRequest: forged, cleanedRequest }), /firma/);

  const listed = await appTester(trigger.performList, { authData });
  assert.ok(listed.some((e) => e.id === item.id), 'the polling fallback lists the same event');

  await appTester(trigger.performUnsubscribe, { authData, subscribeData });
  await appTester(trigger.performUnsubscribe, { authData, subscribeData }); // twice is fine
});

test('report a won deal, then draft, issue, collect and find an invoice', async () => {
  const reported = await appTester(App.creates.report_won_deal.operation.perform, {
    authData,
    inputData: { deal_id: 'ZAP-1', title: 'Proyecto', won_at: '2026-12-01T10:00:00Z', ...CUSTOMER, lines: LINES },
  });
  assert.equal(reported.duplicate, false);
  assert.ok(reported.id && reported.event_ids.length === 1);

  const draft = await appTester(App.creates.create_draft_invoice.operation.perform, {
    authData, inputData: { ...CUSTOMER, lines: LINES, external_ref: 'ZAP-2' },
  });
  assert.equal(draft.status, 'draft', JSON.stringify(draft));
  assert.equal(draft.totals.total, '242.00', JSON.stringify(draft));

  const issued = await appTester(App.creates.issue_invoice.operation.perform,
    { authData, inputData: { invoice_id: draft.id } });
  assert.equal(issued.status, 'issued');
  assert.ok(issued.number);

  const paid = await appTester(App.creates.record_payment.operation.perform,
    { authData, inputData: { invoice_id: draft.id, amount: '242.00', paid_on: '2026-12-03T00:00:00Z' } });
  assert.equal(paid.status, 'paid', JSON.stringify(paid));
  assert.ok(paid.payment_id);
  assert.equal(paid.totals.outstanding, '0.00');

  const byNumber = await appTester(App.searches.find_invoice.operation.perform,
    { authData, inputData: { number: issued.number } });
  assert.deepEqual(byNumber.map((i) => i.id), [draft.id]);
  const byRef = await appTester(App.searches.find_invoice.operation.perform,
    { authData, inputData: { external_ref: 'ZAP-2' } });
  assert.deepEqual(byRef.map((i) => i.id), [draft.id]);
  const customers = await appTester(App.searches.find_customer.operation.perform,
    { authData, inputData: { tax_id: 'B10000008' } });
  assert.equal(customers[0].name, 'Talleres Zapier SL');
});

test('an action Puente refuses shows its reason to the Zap user', async () => {
  await assert.rejects(
    appTester(App.creates.issue_invoice.operation.perform, { authData, inputData: { invoice_id: 999999 } }),
    /999999/,
  );
  await assert.rejects(
    appTester(App.creates.create_draft_invoice.operation.perform,
      { authData, inputData: { ...CUSTOMER, customer_tax_id: 'X', lines: LINES } }),
    /tax_id/,
  );
});
