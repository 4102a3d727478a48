// Role bindings over namespace patterns, anonymous pull patterns (of pushed repositories, and of
// content mirrored from upstreams), and the scope of bearer tokens.
// viewer: pull; editor: pull and push; admin: pull, push and delete, and the catalog when bound
// on "**". The most generous matching binding wins. With no binding configured at all, every
// account is an admin on "**", as with CNCF distribution's htpasswd auth, so `--htpasswd` alone
// makes a working private registry. Whatever is configured, an anonymous principal can only
// ever pull.
import type { AccessPolicy, Action, Authorizer, Decision, Need, Principal, RoleName } from '../core/auth.js'
import { compileNamespacePatterns, type NamespaceMatcher } from './namespace-pattern.js'

const roleActions: Record<RoleName, readonly Action[]> = {
  viewer: ['pull'],
  editor: ['pull', 'push'],
  admin: ['pull', 'push', 'delete'],
}

interface Binding {
  subjects: ReadonlySet<string>
  /** Binds every account (the implicit binding when none is configured). */
  everyAccount?: boolean
  matches: NamespaceMatcher
  actions: readonly Action[]
  /** An admin binding on "**": may list the catalog. */
  registryAdmin: boolean
}

export class RoleAuthorizer implements Authorizer {
  private bindings: Binding[] = []
  private anonymousPull: NamespaceMatcher = () => false
  private anonymousMirrorPull: NamespaceMatcher = () => false

  constructor(policy: AccessPolicy) {
    this.update(policy)
  }

  /** Replaces the policy at once (a later request sees only the new one). */
  update({ roles, anonymousPull, anonymousMirrorPull }: AccessPolicy): void {
    this.bindings =
      roles.length === 0
        ? [{ subjects: new Set(), everyAccount: true, matches: () => true, actions: roleActions.admin, registryAdmin: true }]
        : roles.map((r) => ({
            subjects: new Set(r.subjects),
            matches: compileNamespacePatterns(r.namespaces),
            actions: roleActions[r.role],
            registryAdmin: r.role === 'admin' && r.namespaces.includes('**'),
          }))
    this.anonymousPull = compileNamespacePatterns(anonymousPull)
    this.anonymousMirrorPull = compileNamespacePatterns(anonymousMirrorPull)
  }

  authorize(principal: Principal, need: Need): Decision {
    // Open mirror content is open to every request, whatever its token says: a token scoped to
    // other repositories must not turn a public pull into a 401 loop.
    if (this.openMirrorPull(need)) return 'allow'
    if (!this.rolesAllow(principal, need)) return 'deny'
    if (principal.access !== undefined && !tokenAllows(principal, need)) return 'insufficient-scope'
    return 'allow'
  }

  private openMirrorPull(need: Need): boolean {
    return need.type === 'repository' && need.action === 'pull' && need.mirrored !== undefined && this.anonymousMirrorPull(need.mirrored)
  }

  /** What the principal's roles allow, its token aside: the token service grants no more. */
  rolesAllow(principal: Principal, need: Need): boolean {
    if (need.type === 'registry') {
      return !principal.anonymous && this.bindings.some((b) => b.registryAdmin && this.bound(b, principal))
    }
    if (need.action === 'pull' && (this.anonymousPull(need.name) || this.openMirrorPull(need))) return true
    if (principal.anonymous && need.action !== 'pull') return false // never, whatever the bindings say
    return this.bindings.some((b) => b.actions.includes(need.action) && this.bound(b, principal) && b.matches(need.name))
  }

  // What anonymous may do, everyone may: bindings of "anonymous" apply to accounts too.
  private bound(binding: Binding, principal: Principal): boolean {
    if (binding.subjects.has('anonymous')) return true
    if (principal.anonymous) return false
    if (binding.everyAccount) return true
    return binding.subjects.has(principal.name) || principal.groups.some((g) => binding.subjects.has(`group:${g}`))
  }
}

function tokenAllows(principal: Principal, need: Need): boolean {
  return (principal.access ?? []).some(
    (a) =>
      a.type === need.type &&
      (a.name === need.name || (need.type === 'repository' && a.name === need.requested)) &&
      (a.actions.includes(need.action) || a.actions.includes('*')),
  )
}
