#!/usr/bin/env node
// A real relying party (openid-client v6) running the whole OpenID Connect
// life cycle against a running Sluis: discovery, authorization code + PKCE,
// ID token checks, userinfo, introspection, refresh rotation, revocation,
// RP-initiated logout and "the session is really gone".
//
// The script plays both roles: the RP (through openid-client) and the user's
// browser (plain fetch with manual redirects and a small cookie jar, filling
// in Sluis' login and consent forms).
//
// Inputs (environment):
//   RP_ISSUER                    e.g. http://127.0.0.1:8080 (plain http is allowed)
//   RP_CLIENT_ID
//   RP_CLIENT_SECRET             empty string = public client (auth method "none")
//   RP_REDIRECT_URI
//   RP_POST_LOGOUT_REDIRECT_URI
//   RP_USER_EMAIL
//   RP_USER_PASSWORD
//   RP_SCOPE                     optional, default "openid email profile"
//   RP_EXPECT_EMAIL              optional: "present" (default) = userinfo must
//                                carry the user's email; "absent" = neither the
//                                ID token nor userinfo may carry an email claim
//                                (the release rule withheld it)
//
// Output: one JSON line {"ok":true,"sub":...,"scope":...,"consent_shown":...}
// on stdout and exit 0 (scope: what the token response granted; consent_shown:
// whether the consent page was shown during the first login), or a message on
// stderr, {"ok":false,"error":...} on stdout and exit 1.

import * as client from 'openid-client';
import { createHash } from 'node:crypto';

const HTTP_TIMEOUT_MS = 10_000;
const OVERALL_TIMEOUT_MS = 90_000;
const MAX_BROWSER_STEPS = 15;
const CLOCK_SKEW_S = 60;

class FlowError extends Error {}

function fail(message) {
  throw new FlowError(message);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function step(message) {
  process.stderr.write(`[rp-node] ${message}\n`);
}

// The flow stage in progress, so a protocol error from deep inside
// openid-client still says which part of the flow failed.
let stage = 'startup';
function begin(name) {
  stage = name;
}

function readEnv() {
  const names = [
    'RP_ISSUER',
    'RP_CLIENT_ID',
    'RP_CLIENT_SECRET',
    'RP_REDIRECT_URI',
    'RP_POST_LOGOUT_REDIRECT_URI',
    'RP_USER_EMAIL',
    'RP_USER_PASSWORD',
  ];
  const env = {};
  for (const name of names) {
    const value = process.env[name];
    // RP_CLIENT_SECRET may be empty (public client) but must be set, so a
    // forgotten variable is not silently treated as "public client".
    if (value === undefined || (value === '' && name !== 'RP_CLIENT_SECRET')) {
      fail(`environment variable ${name} is not set`);
    }
    env[name] = value;
  }
  const expectEmail = process.env.RP_EXPECT_EMAIL || 'present';
  check(
    expectEmail === 'present' || expectEmail === 'absent',
    `RP_EXPECT_EMAIL must be "present" or "absent", not ${JSON.stringify(expectEmail)}`,
  );
  return {
    scope: process.env.RP_SCOPE || 'openid email profile',
    expectEmail,
    issuer: new URL(env.RP_ISSUER),
    clientId: env.RP_CLIENT_ID,
    clientSecret: env.RP_CLIENT_SECRET,
    redirectUri: env.RP_REDIRECT_URI,
    postLogoutRedirectUri: env.RP_POST_LOGOUT_REDIRECT_URI,
    email: env.RP_USER_EMAIL,
    password: env.RP_USER_PASSWORD,
  };
}

// ---------------------------------------------------------------------------
// Browser side: cookie jar, HTML form parsing, redirect following.
// ---------------------------------------------------------------------------

// Minimal cookie jar for a single origin. Domain, Secure and SameSite are
// ignored on purpose: every request goes to the issuer origin over plain
// http on loopback, where a browser would send these cookies anyway. Path and
// expiry are honoured because logout relies on cookies being deleted.
class CookieJar {
  #cookies = new Map(); // key "name\0path" -> { name, value, path }

  store(response, requestUrl) {
    for (const header of response.headers.getSetCookie()) {
      this.#storeOne(header, requestUrl);
    }
  }

  #storeOne(header, requestUrl) {
    const [pair, ...attributes] = header.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    let path = defaultCookiePath(requestUrl);
    let expired = false;
    for (const attribute of attributes) {
      const [rawKey, ...rest] = attribute.split('=');
      const key = rawKey.trim().toLowerCase();
      const attrValue = rest.join('=').trim();
      if (key === 'path' && attrValue.startsWith('/')) path = attrValue;
      if (key === 'max-age' && Number(attrValue) <= 0) expired = true;
      if (key === 'expires' && Date.parse(attrValue) <= Date.now()) expired = true;
    }
    const key = `${name}\0${path}`;
    if (expired) this.#cookies.delete(key);
    else this.#cookies.set(key, { name, value, path });
  }

  headerFor(url) {
    const path = url.pathname;
    const matching = [...this.#cookies.values()].filter(
      (c) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
    );
    // Longer paths first, as browsers do.
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

function defaultCookiePath(url) {
  const path = url.pathname;
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

function unescapeHtml(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos|#39);/gi, (entity, body) => {
    const lower = body.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[lower] ?? entity;
  });
}

// Attributes of one start tag, e.g. `<input type="hidden" name="a" value="b">`.
// Sluis always double-quotes attribute values; bare boolean attributes
// (`checked`, `disabled`) map to ''.
function parseAttributes(tag) {
  const attributes = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  const inner = tag.replace(/^<[a-zA-Z]+/, '').replace(/\/?>$/, '');
  for (const m of inner.matchAll(re)) {
    attributes[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attributes;
}

// The first <form> of a page: where it goes and what it would send.
function parseFirstForm(html, pageUrl) {
  const match = html.match(/<form\b[^>]*>([\s\S]*?)<\/form>/i);
  if (!match) return null;
  const formAttributes = parseAttributes(match[0].match(/^<form\b[^>]*>/i)[0]);
  const body = match[1];
  const inputs = [...body.matchAll(/<input\b[^>]*>/gi)].map((m) => parseAttributes(m[0]));
  const buttons = [...body.matchAll(/<button\b[^>]*>/gi)].map((m) => parseAttributes(m[0]));
  return {
    // A missing action means "submit to the page itself".
    action: new URL(formAttributes.action ?? '', pageUrl),
    method: (formAttributes.method ?? 'get').toUpperCase(),
    inputs,
    buttons,
  };
}

function formHasInput(form, name) {
  return form.inputs.some((input) => input.name === name);
}

// The body a user would submit: every named input (checkboxes/radios only
// when checked, submit inputs never), credentials filled in, and the button
// the user would click.
function fillForm(form, { email, password }) {
  const fields = new URLSearchParams();
  for (const input of form.inputs) {
    const type = (input.type ?? 'text').toLowerCase();
    if (!input.name || input.disabled !== undefined) continue;
    if (['submit', 'button', 'image', 'reset', 'file'].includes(type)) continue;
    if (['checkbox', 'radio'].includes(type) && input.checked === undefined) continue;
    let value = input.value ?? (['checkbox', 'radio'].includes(type) ? 'on' : '');
    if (input.name === 'email') value = email;
    if (input.name === 'password') value = password;
    fields.append(input.name, value);
  }
  // Consent: always allow. Other forms with named buttons (e.g. a logout
  // confirmation) get their first named button, normally the primary action.
  const named = form.buttons.filter((b) => b.name && b.disabled === undefined);
  const allow = named.find((b) => b.name === 'decision' && b.value === 'allow');
  const chosen = allow ?? named[0];
  if (chosen) fields.append(chosen.name, chosen.value ?? '');
  return fields;
}

// Visible text of a page, to make failure messages useful.
function pageText(html) {
  return html
    .replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}

class Browser {
  constructor(origin) {
    this.origin = origin;
    this.jar = new CookieJar();
  }

  async #request(url, method, body) {
    check(url.origin === this.origin, `browser refused to leave the issuer origin: ${url.href}`);
    const headers = { accept: 'text/html,application/xhtml+xml' };
    const cookie = this.jar.headerFor(url);
    if (cookie) headers.cookie = cookie;
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body?.toString(),
        redirect: 'manual',
        signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
      });
    } catch (err) {
      fail(`${method} ${url.href} failed: ${err.message}`);
    }
    this.jar.store(response, url);
    return response;
  }

  // Follows redirects (within the issuer origin) and hands every HTML page
  // to `onPage(page)`, which returns either a form submission
  // `{ url, method, body }` to continue with, or null to stop there.
  // Returns `{ redirect: URL }` once a Location starts with `stopAt`, or
  // `{ page }` when onPage stopped.
  async navigate(startUrl, { stopAt, onPage }) {
    let url = new URL(startUrl);
    let method = 'GET';
    let body = null;
    for (let i = 0; i < MAX_BROWSER_STEPS; i++) {
      const response = await this.#request(url, method, body);
      if (response.status >= 300 && response.status < 400) {
        const location = response.headers.get('location');
        check(location, `${response.status} from ${url.href} without Location`);
        const next = new URL(location, url);
        if (next.href.startsWith(stopAt)) return { redirect: next };
        check(next.origin === this.origin, `unexpected redirect off the issuer to ${next.href}`);
        url = next;
        method = 'GET';
        body = null;
        continue;
      }
      const html = await response.text();
      const contentType = response.headers.get('content-type') ?? '';
      check(
        response.status === 200 && contentType.includes('text/html'),
        `${method} ${url.href} answered ${response.status} ${contentType}: ${pageText(html)}`,
      );
      const page = { url, html, form: parseFirstForm(html, url) };
      const next = onPage(page);
      if (!next) return { page };
      ({ url, method, body } = next);
      if (method === 'GET') {
        url = new URL(url);
        url.search = body.toString();
        body = null;
      }
    }
    fail(`no redirect to ${stopAt} after ${MAX_BROWSER_STEPS} browser steps`);
  }
}

// onPage handler that acts like a user who logs in and consents. Seeing the
// login form a second time means the credentials were rejected. If `seen` is
// given, `seen.consent` is set once a consent form (decision=allow) is shown.
function userSubmittingForms(credentials, seen = {}) {
  let loginSubmitted = false;
  return (page) => {
    check(page.form, `page ${page.url.href} has no form: ${pageText(page.html)}`);
    if (formHasInput(page.form, 'password')) {
      check(!loginSubmitted, `login rejected, login form shown again: ${pageText(page.html)}`);
      loginSubmitted = true;
    }
    if (page.form.buttons.some((b) => b.name === 'decision' && b.value === 'allow')) seen.consent = true;
    return {
      url: page.form.action,
      method: page.form.method,
      body: fillForm(page.form, credentials),
    };
  };
}

// ---------------------------------------------------------------------------
// RP side.
// ---------------------------------------------------------------------------

async function discover(env) {
  begin('discovery');
  const options = { execute: [client.allowInsecureRequests] };
  // Discover once to learn the supported token endpoint auth methods, then
  // build the configuration with the method the server prefers for us.
  const discovered = await client.discovery(env.issuer, env.clientId, undefined, client.None(), options);
  const metadata = discovered.serverMetadata();
  let auth = client.None();
  let method = 'none';
  if (env.clientSecret !== '') {
    // Per OpenID Connect Discovery, a missing list means client_secret_basic.
    const supported = metadata.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
    method = supported.includes('client_secret_basic') ? 'client_secret_basic' : 'client_secret_post';
    auth =
      method === 'client_secret_basic'
        ? client.ClientSecretBasic(env.clientSecret)
        : client.ClientSecretPost(env.clientSecret);
  }
  // serverMetadata() carries helper methods; the constructor wants plain JSON.
  const plainMetadata = JSON.parse(JSON.stringify(metadata));
  const config = new client.Configuration(plainMetadata, env.clientId, env.clientSecret || undefined, auth);
  client.allowInsecureRequests(config);
  step(`discovered ${metadata.issuer}, client auth ${method}`);
  return config;
}

async function newAuthorizationRequest(config, env) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const request = {
    codeVerifier,
    state: client.randomState(),
    nonce: client.randomNonce(),
  };
  request.url = client.buildAuthorizationUrl(config, {
    redirect_uri: env.redirectUri,
    scope: env.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state: request.state,
    nonce: request.nonce,
  });
  return request;
}

// at_hash = base64url(left half of hash(access_token)), hash chosen by the
// ID token's signing algorithm (OIDC Core 3.1.3.6; EdDSA/Ed25519 uses SHA-512).
function expectedAtHash(idToken, accessToken) {
  const header = JSON.parse(Buffer.from(idToken.split('.')[0], 'base64url').toString());
  const alg = header.alg;
  const hash = alg === 'EdDSA' || alg === 'Ed25519' ? 'sha512' : `sha${alg.slice(-3)}`;
  check(['sha256', 'sha384', 'sha512'].includes(hash), `unsupported ID token alg ${alg}`);
  const digest = createHash(hash).update(accessToken).digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

function checkIdToken(config, tokens, request, env) {
  const claims = tokens.claims();
  check(claims, 'token response has no ID token');
  const now = Math.floor(Date.now() / 1000);
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  check(typeof claims.sub === 'string' && claims.sub !== '', 'ID token: sub missing');
  check(claims.iss === config.serverMetadata().issuer, `ID token: iss ${claims.iss} is not the issuer`);
  check(audiences.includes(env.clientId), `ID token: aud ${JSON.stringify(claims.aud)} lacks client`);
  check(claims.nonce === request.nonce, 'ID token: nonce mismatch');
  check(typeof claims.at_hash === 'string', 'ID token: at_hash missing');
  check(
    claims.at_hash === expectedAtHash(tokens.id_token, tokens.access_token),
    'ID token: at_hash does not match the access token',
  );
  check(Number.isInteger(claims.auth_time), 'ID token: auth_time missing');
  check(claims.auth_time <= now + CLOCK_SKEW_S, 'ID token: auth_time in the future');
  check(claims.auth_time >= now - 3600, 'ID token: auth_time too old for a fresh login');
  check(
    Array.isArray(claims.amr) && claims.amr.length > 0 && claims.amr.every((v) => typeof v === 'string'),
    `ID token: amr ${JSON.stringify(claims.amr)} is not a non-empty string array`,
  );
  check(typeof claims.sid === 'string' && claims.sid !== '', 'ID token: sid missing');
  step(`ID token ok: sub=${claims.sub} amr=${claims.amr.join(',')}`);
  return claims;
}

async function login(config, browser, env) {
  begin('login');
  const request = await newAuthorizationRequest(config, env);
  const seen = { consent: false };
  const result = await browser.navigate(request.url, {
    stopAt: env.redirectUri,
    onPage: userSubmittingForms(env, seen),
  });
  step(`authorization response: ${result.redirect.href.split('?')[0]}`);
  begin('code exchange');
  const tokens = await client.authorizationCodeGrant(config, result.redirect, {
    pkceCodeVerifier: request.codeVerifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
  check(tokens.access_token, 'token response has no access_token');
  check(tokens.refresh_token, 'token response has no refresh_token');
  const claims = checkIdToken(config, tokens, request, env);
  if (env.expectEmail === 'absent') {
    check(claims.email === undefined, `ID token: email ${claims.email} released though it must be absent`);
  }
  step(`granted scope: ${tokens.scope}; consent page ${seen.consent ? 'shown' : 'not shown'}`);
  return { tokens, claims, consentShown: seen.consent };
}

async function checkUserInfo(config, tokens, sub, env) {
  begin('userinfo');
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, sub);
  if (env.expectEmail === 'absent') {
    check(userinfo.email === undefined, `userinfo: email ${userinfo.email} released though it must be absent`);
    check(userinfo.email_verified === undefined, 'userinfo: email_verified released though email must be absent');
    step('userinfo ok (no email)');
    return;
  }
  check(userinfo.email === env.email, `userinfo email ${userinfo.email} != ${env.email}`);
  step('userinfo ok');
}

async function checkIntrospection(config, tokens, sub, env) {
  begin('introspection');
  if (env.clientSecret === '') {
    step('introspection skipped (public client)');
    return;
  }
  const result = await client.tokenIntrospection(config, tokens.access_token, {
    token_type_hint: 'access_token',
  });
  check(result.active === true, `introspection: access token not active: ${JSON.stringify(result)}`);
  if (result.sub !== undefined) check(result.sub === sub, 'introspection: sub mismatch');
  if (result.client_id !== undefined) check(result.client_id === env.clientId, 'introspection: client_id mismatch');
  step('introspection ok');
}

// Refresh rotates the refresh token; the rotated one is then revoked and must
// no longer be accepted. Returns the refreshed tokens.
async function checkRefreshAndRevocation(config, tokens) {
  begin('refresh');
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(refreshed.access_token, 'refresh: no access_token');
  check(refreshed.refresh_token, 'refresh: no new refresh_token');
  check(refreshed.refresh_token !== tokens.refresh_token, 'refresh: refresh token was not rotated');
  step('refresh ok (rotated)');

  begin('revocation');
  await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' });
  try {
    await client.refreshTokenGrant(config, refreshed.refresh_token);
  } catch (err) {
    check(
      err instanceof client.ResponseBodyError && err.error === 'invalid_grant',
      `refresh with revoked token: expected invalid_grant, got ${describeError(err)}`,
    );
    step('revocation ok (revoked refresh token rejected with invalid_grant)');
    return refreshed;
  }
  fail('refresh with a revoked refresh token succeeded');
}

async function logout(config, browser, idToken, env) {
  begin('logout');
  const state = client.randomState();
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: idToken,
    post_logout_redirect_uri: env.postLogoutRedirectUri,
    state,
  });
  // A confirmation page, if any, is submitted like a user clicking "log out".
  const result = await browser.navigate(url, {
    stopAt: env.postLogoutRedirectUri,
    onPage: userSubmittingForms({ email: env.email, password: env.password }),
  });
  const echoed = result.redirect.searchParams.get('state');
  check(echoed === state, `logout: state not echoed (got ${echoed})`);
  step('logout ok');
}

async function checkLoggedOut(config, browser, env) {
  begin('login-after-logout');
  const request = await newAuthorizationRequest(config, env);
  const result = await browser.navigate(request.url, {
    stopAt: env.redirectUri,
    onPage: () => null, // stop at the first page and look at it
  });
  check(!result.redirect, `still logged in after logout: redirected to ${result.redirect?.href}`);
  check(
    result.page.form && formHasInput(result.page.form, 'password'),
    `after logout expected the login page, got: ${pageText(result.page.html)}`,
  );
  step('session gone: login required again');
}

function describeError(err) {
  if (err instanceof client.ResponseBodyError) {
    return `${err.status} ${err.error}${err.error_description ? `: ${err.error_description}` : ''}`;
  }
  if (err instanceof client.AuthorizationResponseError) {
    return `authorization error ${err.error}${err.error_description ? `: ${err.error_description}` : ''}`;
  }
  const cause = err?.cause instanceof Error ? ` (cause: ${err.cause.message})` : '';
  return `${err?.message ?? err}${cause}`;
}

async function main() {
  const env = readEnv();
  const config = await discover(env);
  const browser = new Browser(env.issuer.origin);

  const { tokens, claims, consentShown } = await login(config, browser, env);
  await checkUserInfo(config, tokens, claims.sub, env);
  await checkIntrospection(config, tokens, claims.sub, env);
  await checkRefreshAndRevocation(config, tokens);
  await logout(config, browser, tokens.id_token, env);
  await checkLoggedOut(config, browser, env);
  return { ok: true, sub: claims.sub, scope: tokens.scope ?? null, consent_shown: consentShown };
}

// A hung server must not hang the test that runs this script.
const watchdog = setTimeout(() => {
  process.stderr.write(`[rp-node] FAIL: timed out after ${OVERALL_TIMEOUT_MS} ms\n`);
  process.stdout.write(`${JSON.stringify({ ok: false, error: 'timeout' })}\n`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);
watchdog.unref();

try {
  const result = await main();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  const message = `${stage}: ${err instanceof FlowError ? err.message : describeError(err)}`;
  process.stderr.write(`[rp-node] FAIL: ${message}\n`);
  // Stack traces only for bugs, not for protocol errors (which carry a code).
  if (!(err instanceof FlowError) && !err?.code && err?.stack) process.stderr.write(`${err.stack}\n`);
  process.stdout.write(`${JSON.stringify({ ok: false, error: message })}\n`);
  process.exit(1);
}
