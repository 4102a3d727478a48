// Two accounts most access tests need: an editor of everything and a viewer of `team-a/**`, as
// the `auth` section of a config (users with bcrypt hashes, role bindings).
import { basic, htpasswdLine } from './htpasswd.js'

export const editor = { username: 'ed', password: 'ed-pw' }
export const viewer = { username: 'vi', password: 'vi-pw' }
export const asEditor = basic(editor.username, editor.password)
export const asViewer = basic(viewer.username, viewer.password)

export async function teamAuth() {
  const hash = async (user: { username: string; password: string }) => (await htpasswdLine(user.username, user.password)).split(':')[1]!
  return {
    users: [
      { name: editor.username, password: await hash(editor), groups: [] },
      { name: viewer.username, password: await hash(viewer), groups: [] },
    ],
    roles: [
      { subjects: [editor.username], namespaces: ['**'], role: 'editor' as const },
      { subjects: [viewer.username], namespaces: ['team-a/**'], role: 'viewer' as const },
    ],
  }
}
