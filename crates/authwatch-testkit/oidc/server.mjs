// A certified OpenID provider (panva/oidc-provider, https://openid.net/certification/) for the
// `authorization_code` check's tests, with its built-in development login and consent pages.
//
// The built-in login page accepts any login name and ignores the password. To keep the tests
// honest, a middleware in front of it checks the submitted `login` and `password` against the
// probe user: a wrong pair is answered with the login page again (303 back to it), as a real
// provider re-renders its form. One public client uses PKCE with the redirect URI
// https://authwatch.invalid/callback, the one the docs tell users to register.
//
// Prints one JSON line `{"port": N, "issuer": "..."}` once it listens on 127.0.0.1 (port 0:
// the kernel picks), then serves until killed. `--consent skip` grants the scopes without the
// consent page (a first-party app); by default the consent page appears.
import { createServer } from 'node:http';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

export const CLIENT_ID = 'probe-web';
export const USERNAME = 'probe@example.test';
export const PASSWORD = 'p4ss-W0rd-Xy7';
export const REDIRECT_URI = 'https://authwatch.invalid/callback';

const args = process.argv.slice(2);
const skipConsent = args.includes('--consent') && args[args.indexOf('--consent') + 1] === 'skip';

const server = createServer();
await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
const { port } = server.address();
// http on localhost: oidc-provider serves plain HTTP issuers (it only marks cookies secure
// when the request came over TLS); the issuer must be what the tokens carry.
const issuer = `http://localhost:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    token_endpoint_auth_method: 'none',
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  cookies: { keys: ['authwatch-test-cookie-key-not-a-secret'] },
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email'] },
  findAccount(ctx, id) {
    if (id !== USERNAME) return undefined;
    return { accountId: id, claims: () => ({ sub: id, email: id }) };
  },
  loadExistingGrant: skipConsent ? async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email');
    await grant.save();
    return grant;
  } : undefined,
});

// The password check the built-in login page lacks.
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (ctx.method === 'POST' && m && ctx.is('application/x-www-form-urlencoded')) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const body = querystring.parse(Buffer.concat(chunks).toString());
    if (body.prompt === 'login' && (body.login !== USERNAME || body.password !== PASSWORD)) {
      ctx.status = 303;
      ctx.redirect(`/interaction/${m[1]}`);
      return;
    }
    ctx.request.body = body;
  }
  await next();
});

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ port, issuer })}\n`);
