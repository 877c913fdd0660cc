// node oidc-provider set up like Sluis for bench/compare: cluster mode (one worker per core),
// state in Redis (shared by the workers), two confidential clients (client_secret_basic; one
// RS256, one ES256), JWT access tokens through resource indicators, one user whose password
// is an argon2id hash with Sluis' parameters (m=19456 KiB, t=2, p=1), and a minimal login and
// consent interaction. Not a production setup: no TLS, no templates, one in-memory account.
//
// Configured by the environment (set by bench/compare):
//   PORT, ISSUER, REDIS_SOCKET, WORKERS (0: one per core), BENCH_CLIENTS (JSON list of
//   {client_id, client_secret, alg}), BENCH_REDIRECT_URI, BENCH_EMAIL, BENCH_PASSWORD.
import cluster from 'node:cluster';
import crypto from 'node:crypto';
import http from 'node:http';
import os from 'node:os';

import argon2 from 'argon2';
import Provider, { errors } from 'oidc-provider';

import { RedisAdapter, connect } from './redis_adapter.mjs';

const env = process.env;
// The API the client_credentials and code-flow access tokens are for (RFC 8707).
const RESOURCE = 'urn:bench:api';
// Sluis' parameters: OWASP's argon2id m=19 MiB, t=2, p=1 (src/crypto/password.rs).
const ARGON2 = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 };

if (cluster.isPrimary) {
  const workers = Number(env.WORKERS || 0) || os.availableParallelism();
  // Keys are made once here so that every worker signs with, and publishes, the same ones.
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const shared = {
    BENCH_JWKS: JSON.stringify({ keys: [{ ...rsa, kid: 'rs', alg: 'RS256', use: 'sig' }, { ...ec, kid: 'es', alg: 'ES256', use: 'sig' }] }),
    BENCH_COOKIE_KEY: crypto.randomBytes(32).toString('base64url'),
    BENCH_PASSWORD_HASH: await argon2.hash(env.BENCH_PASSWORD, ARGON2),
  };
  for (let i = 0; i < workers; i += 1) cluster.fork(shared);
  let ready = 0;
  cluster.on('message', (_, message) => {
    if (message === 'listening' && (ready += 1) === workers) console.log(`ready: ${workers} workers`);
  });
  cluster.on('exit', (worker, code) => console.error(`worker ${worker.process.pid} exited with ${code}`));
} else {
  await worker();
}

async function worker() {
  connect(env.REDIS_SOCKET);
  const account = { id: 'bench-user', email: env.BENCH_EMAIL, hash: env.BENCH_PASSWORD_HASH };
  // Verified against for an unknown email, so both answers cost the same (as Sluis does).
  const dummyHash = await argon2.hash('not a real password, only spends time', ARGON2);

  const clients = JSON.parse(env.BENCH_CLIENTS).map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: [env.BENCH_REDIRECT_URI],
    grant_types: ['authorization_code', 'client_credentials'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: c.alg,
    scope: 'openid email profile api',
  }));

  const provider = new Provider(env.ISSUER, {
    adapter: RedisAdapter,
    clients,
    jwks: JSON.parse(env.BENCH_JWKS),
    cookies: { keys: [env.BENCH_COOKIE_KEY] },
    scopes: ['openid', 'email', 'profile', 'api'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    async findAccount(ctx, sub) {
      if (sub !== account.id) return undefined;
      return { accountId: sub, claims: () => ({ sub, email: account.email, email_verified: true, name: 'Bench User' }) };
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // client_credentials without a `resource` gets the API (as Sluis' tokens are for its issuer).
        defaultResource: (ctx, client, oneOf) => oneOf ?? (ctx.oidc.params?.grant_type === 'client_credentials' ? RESOURCE : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, resource, client) {
          if (resource !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'api',
            audience: RESOURCE,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: client.idTokenSignedResponseAlg } },
          };
        },
      },
    },
    pkce: { required: () => true },
    // Sluis' defaults: access tokens 5 minutes, ID tokens an hour.
    ttl: { AccessToken: 300, ClientCredentials: 300, IdToken: 3600, AuthorizationCode: 600, Interaction: 3600, Session: 12 * 3600, Grant: 12 * 3600 },
  });
  provider.proxy = false;
  const callback = provider.callback();

  const server = http.createServer(async (req, res) => {
    const match = /^\/interaction\/([\w-]+)(\/login|\/confirm)?$/.exec(req.url);
    if (!match) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') return page(res, details);
      const form = new URLSearchParams(await body(req));
      if (match[2] === '/login' && details.prompt.name === 'login') {
        const email = form.get('email') ?? '';
        const known = email.toLowerCase() === account.email;
        const ok = await argon2.verify(known ? account.hash : dummyHash, form.get('password') ?? '');
        if (!(known && ok)) return page(res, details, 'The email address or password is incorrect.');
        return await provider.interactionFinished(req, res, { login: { accountId: account.id } }, { mergeWithLastSubmission: false });
      }
      if (match[2] === '/confirm' && details.prompt.name === 'consent') {
        const grantId = await grantConsent(provider, details);
        return await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      }
      res.writeHead(400).end('wrong step');
    } catch (err) {
      res.writeHead(err.statusCode ?? 500, { 'content-type': 'text/plain' }).end(String(err.message));
    }
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(env.PORT), '127.0.0.1', () => process.send('listening'));
}

/** Grants everything the consent prompt says is missing (the user said yes). */
async function grantConsent(provider, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '));
  return grant.save();
}

function page(res, details, error = '') {
  const { uid, prompt } = details;
  const html = prompt.name === 'login'
    ? `<form method="post" action="/interaction/${uid}/login"><p>${error}</p><input name="email"><input name="password" type="password"><button>Sign in</button></form>`
    : `<form method="post" action="/interaction/${uid}/confirm"><button name="decision" value="allow">Allow</button></form>`;
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
}

async function body(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw Object.assign(new Error('body too large'), { statusCode: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString();
}
