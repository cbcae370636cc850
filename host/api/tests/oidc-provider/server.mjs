// A real OpenID Connect provider (the oidc-provider package) for the hub's SSO tests.
//
// Environment: REDIRECT_URI (the hub's callback), ACCOUNTS (JSON: {"id": {"email", "email_verified",
// "name", "groups": [...]}}), CODE_TTL (seconds an authorization code lives, default 60).
// It listens on 127.0.0.1 on a free port and prints `listening <issuer>` on stdout.
//
// Interactions complete by themselves so that a test can drive the flow without a browser: the
// account is the authorization request's `login_hint`, and consent grants what was asked. Codes,
// tokens, PKCE, state, nonce and signatures are the provider's own.
import Provider from 'oidc-provider';
import http from 'node:http';

const accounts = JSON.parse(process.env.ACCOUNTS || '{}');
const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'hub',
    client_secret: 'hub-test-secret',
    redirect_uris: [process.env.REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true, methods: ['S256'] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Put the scopes' claims in the ID token (the hub reads the ID token only).
  conformIdTokenClaims: false,
  ttl: { AuthorizationCode: Number(process.env.CODE_TTL || 60) },
  features: { devInteractions: { enabled: false } },
  cookies: { keys: ['hub-test-cookie-key'] },
  findAccount: async (ctx, id) => (accounts[id]
    ? { accountId: id, claims: async () => ({ sub: id, ...accounts[id] }) }
    : undefined),
});

provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!m) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    if (!accounts[params.login_hint]) {
      ctx.status = 400;
      ctx.body = `unknown login_hint ${params.login_hint}`;
      return undefined;
    }
    result = { login: { accountId: params.login_hint } };
  } else {
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    grant.addOIDCScope(params.scope);
    const missing = prompt.details.missingOIDCClaims;
    if (missing) grant.addOIDCClaims(missing);
    result = { consent: { grantId: await grant.save() } };
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.redirect(to);
  return undefined;
});

server.on('request', provider.callback());
console.log(`listening ${issuer}`);
