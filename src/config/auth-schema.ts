// The `auth` section: accounts, role bindings (in the vocabulary of core/auth.ts), anonymous
// access, tokens and the failed-login limit.
import { Type } from '@sinclair/typebox'
import { roleNames } from '../core/auth.js'
import { ConfigIssue } from './errors.js'
import { checkUnique, duration, oneOf, optionalPath, section } from './leaves.js'

// Namespace patterns of role bindings: components separated by "/", where "*" stands for one
// component (or part of one: "team-*") and "**" for any number of them, none included.
const namespacePatternPattern = '^(?:\\*\\*|[a-z0-9._*-]+)(?:/(?:\\*\\*|[a-z0-9._*-]+))*$'
const namespacePatternExpected = 'a namespace pattern like "team-a/*", "team-a/**" or "**"'

const userSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[^:\\s]+$', expected: 'a user name without ":" or spaces' }),
    // Optional: an entry without a password gives groups to the htpasswd user of that name.
    password: Type.Optional(
      Type.String({
        pattern: '^\\$2[aby]\\$\\d{2}\\$[./A-Za-z0-9]{53}$',
        expected: 'a bcrypt hash like "$2y$10$..." (htpasswd -nB <user>)',
      }),
    ),
    groups: Type.Array(Type.String({ pattern: '^[^:\\s]+$', expected: 'a group name' }), {
      default: [],
      expected: 'a list of group names',
    }),
  },
  { additionalProperties: false, expected: 'a mapping with name, password and groups' },
)

const roleBindingSchema = Type.Object(
  {
    subjects: Type.Array(Type.String({ pattern: '^[^:\\s]+$|^group:[^:\\s]+$', expected: 'a user name, "group:<name>" or "anonymous"' }), {
      minItems: 1,
      expected: 'a non-empty list of subjects',
    }),
    namespaces: Type.Array(Type.String({ pattern: namespacePatternPattern, expected: namespacePatternExpected }), {
      minItems: 1,
      expected: 'a non-empty list of namespace patterns',
    }),
    role: oneOf(roleNames),
  },
  { additionalProperties: false, expected: 'a mapping with subjects, namespaces and role' },
)

export const authSchema = section({
  /** htpasswd file (bcrypt entries), watched and re-read on change. */
  htpasswd: optionalPath('a path to an htpasswd file (bcrypt entries, htpasswd -B), or "" for none'),
  /** Inline accounts; one without a password only gives groups to the htpasswd user of that name. */
  users: Type.Transform(Type.Array(userSchema, { default: [], expected: 'a list of users' }))
    .Decode((users) => {
      checkUnique(users, 'name', 'user')
      return users
    })
    .Encode((users) => users),
  // Anonymous push and delete are refused whatever the bindings say; binding "anonymous" to more
  // than viewer is reported rather than silently ignored, so nobody believes it works.
  roles: Type.Transform(Type.Array(roleBindingSchema, { default: [], expected: 'a list of role bindings' }))
    .Decode((roles) => {
      roles.forEach((binding, i) => {
        if (binding.role !== 'viewer' && binding.subjects.includes('anonymous')) {
          throw new ConfigIssue([String(i), 'subjects'], `"anonymous" can only be a viewer: anonymous push and delete are never allowed`)
        }
      })
      return roles
    })
    .Encode((roles) => roles),
  /** Namespace patterns of pushed repositories anonymous clients may pull. */
  anonymousPull: Type.Array(Type.String({ pattern: namespacePatternPattern, expected: namespacePatternExpected }), {
    default: [],
    expected: 'a list of namespace patterns',
  }),
  /** Patterns over `<upstream>/<repository>` that anyone may pull from the mirror (content not pushed here). */
  anonymousMirrorPull: Type.Array(
    Type.String({ pattern: namespacePatternPattern, expected: 'an upstream-qualified pattern like "gcr.io/**"' }),
    {
      default: ['**'],
      expected: 'a list of namespace patterns',
    },
  ),
  token: section({
    issuer: Type.String({ minLength: 1, default: 'ferry', expected: 'a non-empty string' }),
    /** The `service` of challenges and the `aud` of tokens. */
    service: Type.String({ minLength: 1, default: 'ferry', expected: 'a non-empty string' }),
    /** The token endpoint URL advertised in challenges; "" (undefined) derives it from each request. */
    realm: Type.Transform(
      Type.String({
        default: '',
        pattern: '^(?:https?://\\S+)?$',
        expected: 'an http(s) URL of the token endpoint, or "" to derive it from each request',
      }),
    )
      .Decode((realm): string | undefined => (realm === '' ? undefined : realm))
      .Encode((realm) => realm ?? ''),
    /** Milliseconds an access token is valid. */
    ttl: duration('5m', { positive: true }),
    /** Milliseconds a refresh token is valid. */
    refreshTtl: duration('7d', { positive: true }),
    /** PEM private key file signing tokens; "" (undefined) generates one in memory at start. */
    key: optionalPath('a path to a PEM private key (EC P-256 or RSA), or "" for a key generated at start'),
  }),
  /** Per client address: `max` failed logins within `window`, then 429 until the window frees. */
  failedLogins: section({
    max: Type.Integer({ minimum: 1, default: 10, expected: 'an integer of at least 1' }),
    window: duration('5m', { positive: true }),
  }),
})
