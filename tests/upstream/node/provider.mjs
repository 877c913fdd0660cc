// A real OpenID provider (oidc-provider) as Sluis' upstream in tests, several issuers in
// one process. Reads its configuration as JSON from the file named by the first argument:
//
//   { "port": 4000,
//     "providers": [{
//       "prefix": "/google",                  // path the issuer lives under
//       "claims": { "openid": ["sub"], ... }, // scope -> claims (ID token carries them all)
//       "clients": [{ "client_id", "client_secret", "redirect_uris" }],
//       "accounts": { "<login>": { "sub", "email", "email_verified", "name", "tid" } },
//       "template": { "prefix": "/common/v2.0", "issuer": "http://127.0.0.1:4000/{tenantid}/v2.0" },
//       "tamper": { "<client_id>": "nonce" | "aud" | "signature" }
//     }] }
//
// `template` serves a Microsoft-shaped multi-tenant discovery document (its issuer a
// template) at another path; `tamper` alters the ID token the token endpoint returns to
// that client: re-signed with the provider's own key but a wrong nonce or audience, or with
// a flipped signature bit. Prints `ready` once listening; exits when stdin closes, so it
// never outlives the test process.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import * as jose from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const base = `http://127.0.0.1:${config.port}`;

async function signingKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: `k-${Math.random().toString(36).slice(2, 10)}`, use: 'sig', alg: 'RS256' };
}

async function tampered(idToken, mode, jwk) {
  if (mode === 'signature') {
    const [header, payload, signature] = idToken.split('.');
    const bytes = Buffer.from(signature, 'base64url');
    bytes[0] ^= 0x01;
    return [header, payload, bytes.toString('base64url')].join('.');
  }
  const claims = jose.decodeJwt(idToken);
  if (mode === 'nonce') claims.nonce = 'not-the-nonce';
  if (mode === 'aud') claims.aud = 'another-client';
  const key = await jose.importJWK(jwk, 'RS256');
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' }).sign(key);
}

async function build(spec) {
  const jwk = await signingKey();
  const issuer = `${base}${spec.prefix}`;
  const accounts = spec.accounts || {};
  const provider = new Provider(issuer, {
    clients: spec.clients.map((c) => ({
      ...c,
      // Native clients may use any port on the loopback address (RFC 8252 §7.3): each test's
      // Sluis listens on its own.
      application_type: 'native',
      grant_types: ['authorization_code'],
      response_types: ['code'],
    })),
    jwks: { keys: [jwk] },
    claims: spec.claims,
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['upstream-test-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return { accountId: id, async claims() { return { ...account, sub: account.sub || id }; } };
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'discovery' && ctx.get('x-template-discovery') && spec.template) {
      ctx.body.issuer = spec.template.issuer;
    }
    const mode = spec.tamper?.[ctx.oidc?.client?.clientId];
    if (ctx.oidc?.route === 'token' && mode && ctx.body?.id_token) {
      ctx.body.id_token = await tampered(ctx.body.id_token, mode, jwk);
    }
  });
  return { spec, callback: provider.callback() };
}

const providers = await Promise.all(config.providers.map(build));

const server = createServer((req, res) => {
  for (const { spec, callback } of providers) {
    const discovery = '/.well-known/openid-configuration';
    if (spec.template && req.url.startsWith(spec.template.prefix + discovery)) {
      req.headers['x-template-discovery'] = '1';
      req.originalUrl = spec.prefix + discovery;
      req.url = discovery;
      return callback(req, res);
    }
    if (req.url.startsWith(spec.prefix + '/')) {
      req.originalUrl = req.url;
      req.url = req.url.slice(spec.prefix.length);
      return callback(req, res);
    }
  }
  res.statusCode = 404;
  return res.end('not found');
});

// The test reads one line and stops reading: anything later goes to stderr.
process.stdout.on('error', () => {});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write('ready\n');
  console.log = console.error;
  console.info = console.error;
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
