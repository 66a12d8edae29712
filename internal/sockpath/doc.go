// Package sockpath prepares the path a unix socket is about to be bound to: it
// removes a stale socket (nobody answers on it) left by a process that died, and
// refuses anything else, so a daemon never destroys a file a user put there.
package sockpath
