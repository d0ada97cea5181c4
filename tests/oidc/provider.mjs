// A real OpenID provider for tests/test_sso.py: oidc-provider on 127.0.0.1 with a sign-in form that
// checks passwords (the package's development form accepts any), one confidential client that must use
// PKCE, and the accounts the test passes in.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, and ACCOUNTS, a JSON object
// {login: {"password": …, "claims": {"email": …, "preferred_username": …, …}}}.
// Prints "ready <issuer>" once it listens.
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.ACCOUNTS);
const SCOPE = 'openid email profile';
const CLAIMS = ['email', 'email_verified', 'preferred_username', 'name', 'feedback_role', 'feedback_unit'];

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name', 'feedback_role', 'feedback_unit'],
  },
  cookies: { keys: ['tests-only-cookie-key'] },
  findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: () => ({ sub: id, ...account.claims }) };
  },
  // A first-party client: no consent screen, every scope and claim granted.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(SCOPE);
    grant.addOIDCClaims(CLAIMS);
    await grant.save();
    return grant;
  },
});

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginForm(res, uid, error) {
  res.statusCode = 200;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(`<!doctype html><html lang="en"><title>Test provider</title>
<h1>Test provider sign-in</h1>
${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Login <input id="login" name="login"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button type="submit">Sign in</button>
</form></html>`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

async function interaction(req, res, uid, isLogin) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid || details.prompt.name !== 'login') {
    res.statusCode = 400;
    res.end(`unexpected interaction ${details.prompt.name}`);
    return;
  }
  if (req.method !== 'POST' || !isLogin) {
    loginForm(res, uid, '');
    return;
  }
  const form = await readForm(req);
  const account = accounts[form.login];
  if (!account || account.password !== form.password) {
    loginForm(res, uid, 'Invalid login or password.');
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
}

const handle = provider.callback();
const server = http.createServer((req, res) => {
  const match = new URL(req.url, issuer).pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) {
    handle(req, res);
    return;
  }
  interaction(req, res, match[1], Boolean(match[2])).catch((error) => {
    res.statusCode = 500;
    res.end(String(error));
  });
});
server.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
