package main

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// removeMasqLeftovers deletes the per-pod NAT chains that the bridge
// plugin's ipMasq made on network and that no DEL removed, with the
// POSTROUTING rules that jump to them. Only for a stopped daemon: every
// chain of its network is then a leftover.
func removeMasqLeftovers(network string) []string {
	rules, err := exec.Command("iptables", "-t", "nat", "-S", "POSTROUTING").Output()
	if err != nil {
		return nil // no iptables, so no chains of ours either
	}
	var found []string
	for _, l := range masqLeftovers(string(rules), network) {
		found = append(found, fmt.Sprintf("NAT chain %s of a pod on %s", l.chain, network))
		if out, err := exec.Command("iptables", "-t", "nat", "-D", "POSTROUTING", strconv.Itoa(l.rule)).CombinedOutput(); err != nil {
			found = append(found, fmt.Sprintf("delete POSTROUTING rule %d: %v: %s", l.rule, err, out))
			continue
		}
		_ = exec.Command("iptables", "-t", "nat", "-F", l.chain).Run()
		if out, err := exec.Command("iptables", "-t", "nat", "-X", l.chain).CombinedOutput(); err != nil {
			found = append(found, fmt.Sprintf("delete chain %s: %v: %s", l.chain, err, out))
		}
	}
	return found
}

// masqLeftover is a POSTROUTING rule, by its 1-based number, and the chain
// it jumps to.
type masqLeftover struct {
	rule  int
	chain string
}

// masqLeftovers reads `iptables -t nat -S POSTROUTING` for the rules that
// the bridge plugin tagged with network's name, last rule first, so that
// deleting them in order keeps the numbers of those still to delete.
func masqLeftovers(rules, network string) []masqLeftover {
	tag := `name: \"` + network + `\"`
	var out []masqLeftover
	n := 0
	for _, line := range strings.Split(rules, "\n") {
		if !strings.HasPrefix(line, "-A POSTROUTING ") {
			continue
		}
		n++
		i := strings.LastIndex(line, " -j ")
		if !strings.Contains(line, tag) || i < 0 {
			continue
		}
		if chain := line[i+len(" -j "):]; strings.HasPrefix(chain, "CNI-") {
			out = append(out, masqLeftover{rule: n, chain: chain})
		}
	}
	slices.Reverse(out)
	return out
}
