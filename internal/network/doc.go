// Package network owns virtual networks, controller side: a project's
// routers and their subnets, the VXLAN id (VNI) of each subnet, address
// management (IPAM) for the VMs' ports, and floating IPs. Ports are
// allocated and released by compute in the VM's own transactions
// (AllocatePorts, ReleasePorts); hosts carry what they need in their
// desired state (see hosts.JoinSubnet).
//
// Keys (under store.Prefix):
//
//	routers/<id>, subnets/<id>                the objects
//	names/routers/<project>/<name>, names/subnets/<project>/<name>
//	project-routers/<project>/<id>            a project's routers
//	router-subnets/<router>/<id>              a router's subnets
//	default-subnet/<project>                  the project's default subnet id
//	vni-next, vnis/<vni>                      the VNI counter and index
//	ipam/<subnet>/<ip>                        an allocated address: its port id
//	fip/<ip>, fip-cursor                      an acquired floating IP (its VM and
//	                                          port); where the next one is sought
//
// A subnet's record counts its ports and holds the allocation cursor, so
// that every allocation rewrites it (its revision orders them); the
// address key, conditioned on its absence, makes two ports sharing an
// address impossible whatever the controllers.
package network
