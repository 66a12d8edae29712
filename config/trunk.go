package config

// trunk validates a port's trunk and native keys at path p: every VLAN in 1-4094,
// native only on a trunk, and vlan (the access VLAN) not alongside a trunk (the
// trunk's untagged VLAN is native). The switch carries native untagged whether or
// not it is also in the trunk list.
func (v *validator) trunk(p string, trunk []int, native, vlan int) ([]uint16, uint16) {
	var out []uint16
	for _, n := range trunk {
		if n < 1 || n > 4094 {
			v.errf(p+".trunk", "trunk vlan %d out of range 1-4094", n)
			continue
		}
		out = append(out, uint16(n))
	}
	if native == 0 {
		if len(trunk) > 0 && vlan != 0 {
			v.errf(p+".vlan", "vlan %d on a trunk port: set native for its untagged VLAN", vlan)
		}
		return out, 0
	}
	switch {
	case len(trunk) == 0:
		v.errf(p+".native", "native vlan %d without a trunk", native)
	case native < 1 || native > 4094:
		v.errf(p+".native", "native vlan %d out of range 1-4094", native)
	case vlan != 0:
		v.errf(p+".vlan", "vlan %d on a trunk port: set native for its untagged VLAN", vlan)
	default:
		return out, uint16(native)
	}
	return out, 0
}
