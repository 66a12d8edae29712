package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

func init() {
	register(command{"completion", "bash|zsh", "print a shell completion script (source <(vnetd completion bash))",
		func(_ context.Context, args []string, stdout, _ io.Writer) error { return cmdCompletion(args, stdout) }})
}

// cmdCompletion prints a bash or zsh completion script built from the command table,
// so it never falls behind the commands the binary has.
func cmdCompletion(args []string, stdout io.Writer) error {
	pos, err := parse(newFlags("completion"), args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"completion needs bash or zsh"}
	}
	var names []string
	for _, c := range allCommands() {
		names = append(names, c.name)
	}
	words := strings.Join(names, " ")
	switch pos[0] {
	case "bash":
		fmt.Fprintf(stdout, bashCompletion, words)
	case "zsh":
		// zsh runs bash completion functions through bashcompinit.
		fmt.Fprintf(stdout, "autoload -U +X bashcompinit && bashcompinit\n"+bashCompletion, words)
	default:
		return usageError{fmt.Sprintf("completion: unknown shell %q (bash or zsh)", pos[0])}
	}
	return nil
}

// bashCompletion completes the command name, then files for -c, -w and validate, and
// the views of `ns NAME`.
const bashCompletion = `# vnetd completion; load with: source <(vnetd completion bash)
_vnetd() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      -s|-c) ((i++)) ;;
      -*) ;;
      *) cmd=${COMP_WORDS[i]}; break ;;
    esac
  done
  case $prev in
    -c|-w|-s) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "%s" -- "$cur")); return
  fi
  case $cmd in
    validate) COMPREPLY=($(compgen -f -- "$cur")) ;;
    ns) [[ $((COMP_CWORD - i)) == 2 ]] && COMPREPLY=($(compgen -W "addr route neigh sockets leases" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
    help) COMPREPLY=($(compgen -W "$(vnetd help 2>/dev/null | awk '/^  [a-z]/ {print $1}')" -- "$cur")) ;;
  esac
}
complete -F _vnetd vnetd
`
