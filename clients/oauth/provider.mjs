// A real OAuth 2.1 / OpenID authorization server on loopback for the hosted-mode OAuth tests (oidc-provider, pinned in
// package.json here; installed by clients/install.sh). Adapted from the verified rig in ../shared/oauth-rig/.
//
// Env: AS_PORT (default 0: any free port), MCP_RESOURCE (the one resource tokens are minted for; by default any
//      http://127.0.0.1:PORT/mcp, so one server serves every flora-mcp a test session starts), OTHER_RESOURCE (another
//      API, for wrong-audience tests), SCOPE (default flora:run), AT_TTL seconds (default 300).
// Prints one JSON line {"issuer": ...} on stdout once it listens.
//
// Clients: m2m / m2m-secret (client_credentials), m2m-short (1 s tokens), m2m-opaque (opaque tokens, checked by RFC 7662
// introspection), flora-rs / rs-secret (the resource server's own credentials, for introspection), mcp-public (public,
// PKCE). Dynamic client registration is open at /reg; a registered client named "short-lived" gets 2 s access tokens.
// Login and consent are scripted: GET /interaction/:uid signs in the authorize request's login_hint (default alice) and
// grants what was asked, so a test's "browser" only follows redirects.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import Provider, { errors } from 'oidc-provider';

const RESOURCE = process.env.MCP_RESOURCE;
const isResource = (r) => (RESOURCE ? r === RESOURCE : /^http:\/\/127\.0\.0\.1:\d+\/mcp$/.test(r));
const OTHER = process.env.OTHER_RESOURCE || 'http://127.0.0.1:8001/other-api';
const SCOPE = process.env.SCOPE || 'flora:run';
const TTL = Number(process.env.AT_TTL || 300);

function accessTokenTTL(client) {
  if (client.clientId === 'm2m-short') return 1;
  if (client.clientName === 'short-lived') return 2;
  return TTL;
}

// A fresh key per start, without a fixed kid (oidc-provider uses the RFC 7638 thumbprint): a resource server that
// cached the JWKS of an earlier start meets an unknown kid and refetches.
const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const server = createServer();
server.listen(Number(process.env.AS_PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    jwks: { keys: [{ ...key, use: 'sig', alg: 'RS256' }] },
    clients: [
      { client_id: 'm2m', client_secret: 'm2m-secret',
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      { client_id: 'm2m-short', client_secret: 'm2m-secret',
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      { client_id: 'm2m-opaque', client_secret: 'm2m-secret',
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      { client_id: 'flora-rs', client_secret: 'rs-secret',
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      { client_id: 'mcp-public', token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
        redirect_uris: ['http://127.0.0.1:3999/callback'] },
    ],
    scopes: ['openid', 'offline_access', SCOPE],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE || undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource, client) => {
          if (!isResource(resource) && resource !== OTHER) throw new errors.InvalidTarget();
          return { scope: SCOPE, audience: resource, accessTokenTTL: accessTokenTTL(client),
                   accessTokenFormat: client.clientId === 'm2m-opaque' ? 'opaque' : 'jwt' };
        },
      },
    },
    // Refresh tokens for the authorization-code clients that ask for offline_access, and for every registered one.
    issueRefreshToken: (ctx, client, code) => client.grantTypeAllowed('refresh_token'),
    findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    ttl: {
      AccessToken: (ctx, t) => t.resourceServer?.accessTokenTTL ?? TTL,
      ClientCredentials: (ctx, t) => t.resourceServer?.accessTokenTTL ?? TTL,
      RefreshToken: 3600, Session: 600, Interaction: 600, Grant: 600, AuthorizationCode: 60,
    },
  });

  provider.use(async (ctx, next) => {
    const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
    if (!m || ctx.method !== 'GET') return next();
    const { prompt, params, session, grantId } = await provider.interactionDetails(ctx.req, ctx.res);
    let result;
    if (prompt.name === 'login') {
      result = { login: { accountId: params.login_hint || 'alice' } };
    } else {
      const grant = grantId ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    }
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true }));
  });

  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});
