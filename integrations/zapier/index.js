'use strict';
// Puente for Zapier: an API key connection; a trigger per Puente event (REST hook, with the
// event list as fallback); actions to report won deals and to draft, issue and collect
// invoices; searches for invoices and customers.

const { version: platformVersion } = require('zapier-platform-core');
const { version } = require('./package.json');
const { api, base, addApiKey, explainErrors } = require('./lib/client');
const { triggers } = require('./lib/triggers');
const { creates, searches } = require('./lib/actions');

const byKey = (list) => Object.fromEntries(list.map((item) => [item.key, item]));

const authentication = {
  type: 'custom',
  fields: [
    { key: 'base_url', label: 'Dirección de Puente', required: true, type: 'string',
      helpText: 'La dirección donde abres Puente, por ejemplo https://puente.miempresa.es' },
    { key: 'api_key', label: 'Clave de API', required: true, type: 'password',
      helpText: 'Créala en Puente (Ajustes → Claves de API) con los permisos read y write.' },
  ],
  // Reading one event proves the address and the key (scope read) are right.
  test: async (z, bundle) => {
    const response = await z.request({ url: api(bundle, '/events'), params: { limit: 1 } });
    return response.data;
  },
  connectionLabel: (z, bundle) => base(bundle).replace(/^https?:\/\//, ''),
};

module.exports = {
  version,
  platformVersion,
  authentication,
  beforeRequest: [addApiKey],
  afterResponse: [explainErrors],
  triggers: byKey(triggers),
  creates: byKey(creates),
  searches: byKey(searches),
};
