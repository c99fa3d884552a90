'use strict';
// How the app talks to Puente: the address and API key of the connection, errors in words
// a Zapier user reads, and the Standard Webhooks signature check of REST hook deliveries.

const crypto = require('crypto');

const base = (bundle) => String(bundle.authData.base_url || '').replace(/\/+$/, '');
const api = (bundle, path) => `${base(bundle)}/api/v1${path}`;

// Every request carries the API key; Puente answers JSON.
const addApiKey = (request, z, bundle) => {
  if (bundle.authData && bundle.authData.api_key) {
    request.headers = request.headers || {};
    request.headers.Authorization = `Bearer ${bundle.authData.api_key}`;
    request.headers.Accept = 'application/json';
  }
  return request;
};

// Puente's errors say what is wrong and how to fix it, in Spanish too: show that.
const explainErrors = (response, z) => {
  if (response.status < 400 || response.skipThrowForStatus) {
    return response;
  }
  let body = {};
  try {
    body = JSON.parse(response.content || '{}');
  } catch (e) {
    body = {};
  }
  const words = body.message_es || body.message || `Puente answered ${response.status}`;
  const fields = (body.errors || []).map((e) => `${e.field}: ${e.message}`).join('; ');
  const message = fields ? `${words} (${fields})` : words;
  if (response.status === 401) {
    throw new z.errors.RefreshAuthError(message);
  }
  if (response.status === 429) {
    const wait = Number(response.headers.get('retry-after') || 60);
    throw new z.errors.ThrottledError(message, wait);
  }
  throw new z.errors.Error(message, body.error || 'PuenteError', response.status);
};

// A delivery is POSTed with webhook-id, webhook-timestamp and webhook-signature
// ("v1,<base64 HMAC-SHA256 of id.timestamp.body>" keyed with the whsec_ secret's bytes).
const TOLERANCE_SECONDS = 300;
// Zapier hands a hook's headers on with an "Http-" prefix; any case is accepted.
const verifySignature = (secret, headers, body, now = Date.now() / 1000) => {
  const named = {};
  Object.entries(headers || {}).forEach(([k, v]) => {
    named[k.toLowerCase().replace(/^http-/, '')] = Array.isArray(v) ? v[0] : v;
  });
  const get = (name) => named[name];
  const id = get('webhook-id');
  const timestamp = get('webhook-timestamp');
  const signatures = String(get('webhook-signature') || '').split(' ');
  if (!id || !timestamp || Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) {
    return false;
  }
  const key = Buffer.from(String(secret).replace(/^whsec_/, ''), 'base64');
  const expected = crypto.createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.some((s) => {
    const [version, value] = s.split(',');
    const given = Buffer.from(value || '', 'base64');
    return version === 'v1' && given.length === expected.length &&
      crypto.timingSafeEqual(given, expected);
  });
};

// What a trigger gives a Zap: the event's data, with its id, type and time.
const flatten = (event) => ({
  ...event.data,
  id: event.id,
  type: event.type,
  created_at: event.created_at,
});

module.exports = { api, base, addApiKey, explainErrors, verifySignature, flatten };
