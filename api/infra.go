package api

// Kinds of infrastructure and compute objects.
const (
	KindHost           = "host"
	KindDatastore      = "datastore"
	KindVM             = "vm"
	KindPersistentDisk = "persistent-disk"
	KindEphemeralDisk  = "ephemeral-disk"
	KindImage          = "image"
)

// Host states.
const (
	HostCreating       = "CREATING"
	HostNotProvisioned = "NOT_PROVISIONED"
	HostReady          = "READY"
	HostMaintenance    = "MAINTENANCE"
	HostSuspended      = "SUSPENDED"
	HostError          = "ERROR"
)

// HostCreateSpec is the body of POST /v1/infrastructure/hosts: it
// pre-registers a host that joins later with a join token.
type HostCreateSpec struct {
	// Address the agent will report, e.g. "10.0.0.5".
	Address string `json:"address"`
	// UsageTags, e.g. ["CLOUD"].
	UsageTags []string `json:"usageTags,omitempty"`
	// AvailabilityZone id or name, e.g. "zone-a".
	AvailabilityZone string            `json:"availabilityZone,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
}

// HostResources is what a host offers or what is used of it.
type HostResources struct {
	// CPUCount is the number of virtual CPUs, e.g. 16.
	CPUCount int `json:"cpuCount"`
	// MemoryMB, e.g. 65536.
	MemoryMB int64 `json:"memoryMb"`
}

// Datastore is storage a host sees, where disks and image copies live.
type Datastore struct {
	Base
	// Name as the agent reports it, e.g. "local".
	Name string `json:"name"`
	// Type, e.g. "LOCAL_VMFS" (Photon) or "LOCAL" / "SHARED" (ours).
	Type string   `json:"type"`
	Tags []string `json:"tags"`
	// CapacityGB and UsedGB of the datastore (ours).
	CapacityGB float64 `json:"capacityGb"`
	UsedGB     float64 `json:"usedGb"`
	// HostIDs see this datastore (ours).
	HostIDs []string `json:"hostIds"`
}

// Host is a hypervisor host that runs VMs.
type Host struct {
	Base
	Address          string            `json:"address"`
	UsageTags        []string          `json:"usageTags"`
	AvailabilityZone string            `json:"availabilityZone,omitempty"`
	State            string            `json:"state"`
	Metadata         map[string]string `json:"metadata"`
	// EsxVersion carries the hypervisor, e.g. "qemu-8.2 (tcg)" or "fake".
	EsxVersion string `json:"esxVersion"`
	// Capacity, Usage and Datastores are ours.
	Capacity   HostResources `json:"capacity"`
	Usage      HostResources `json:"usage"`
	Datastores []string      `json:"datastores"`
	// Suspended is set while the host takes no new VMs (state SUSPENDED
	// unless an ERROR overrides it).
	Suspended bool `json:"suspended,omitempty"`
	// LastSeen is the last heartbeat, ms since the epoch (ours).
	LastSeen int64 `json:"lastSeen"`
	// Reason explains an ERROR state, e.g. "no heartbeat for 15s".
	Reason string `json:"reason,omitempty"`
}

// JoinToken is the answer of POST /v1/infrastructure/join-tokens (ours).
type JoinToken struct {
	// Token is one-time and expires, e.g. "jt-3f9c...".
	Token     string `json:"token"`
	ExpiresAt int64  `json:"expiresAt"`
	// HostID is set when the token is for a pre-registered host.
	HostID string `json:"hostId,omitempty"`
}

// HostJoinRequest is what an agent sends to POST /v1/agent/join (ours).
type HostJoinRequest struct {
	JoinToken string `json:"joinToken"`
	// Address the controller can reach the host at, e.g. "10.0.0.5".
	Address    string            `json:"address"`
	Zone       string            `json:"zone,omitempty"`
	Tags       []string          `json:"tags,omitempty"`
	Capacity   HostResources     `json:"capacity"`
	Datastores []DatastoreReport `json:"datastores"`
	// Hypervisor, e.g. "fake" or "qemu-8.2 (kvm)".
	Hypervisor string `json:"hypervisor"`
}

// DatastoreReport is a datastore as an agent sees it.
type DatastoreReport struct {
	// Name unique on the host, e.g. "local".
	Name string `json:"name"`
	// Shared datastores are seen by every host reporting the same name.
	Shared     bool     `json:"shared,omitempty"`
	CapacityGB float64  `json:"capacityGb"`
	Tags       []string `json:"tags,omitempty"`
}

// HostJoinResponse gives the agent its identity and credential.
type HostJoinResponse struct {
	HostID string `json:"hostId"`
	// Credential is the bearer token the agent uses from now on.
	Credential string `json:"credential"`
}

// VM states.
const (
	VMCreating  = "CREATING"
	VMStarted   = "STARTED"
	VMStopped   = "STOPPED"
	VMSuspended = "SUSPENDED"
	VMError     = "ERROR"
	VMDeleted   = "DELETED"
)

// Disk states.
const (
	DiskCreating = "CREATING"
	DiskDetached = "DETACHED"
	DiskAttached = "ATTACHED"
	DiskError    = "ERROR"
)

// LocalitySpec is one of a create spec's affinities: {"kind": "vm", "id": "..."}.
// Kinds: "vm" (same host as that VM), "disk"/"persistent-disk" (a host that
// sees that disk's datastore), "host" (that host id or address), "datastore".
type LocalitySpec struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// AttachedDiskCreateSpec is a disk made with a VM.
type AttachedDiskCreateSpec struct {
	// Name, e.g. "boot".
	Name string `json:"name"`
	// Kind is ephemeral-disk (made and deleted with the VM) or persistent-disk.
	Kind string `json:"kind"`
	// Flavor names an ephemeral-disk or persistent-disk flavor.
	Flavor string `json:"flavor"`
	// CapacityGB; a boot disk may omit it and take the image's size. A
	// boot disk made from an image is at least the image's virtual size
	// (rounded up to GB): a smaller one is raised to it and charged so.
	CapacityGB float64 `json:"capacityGb,omitempty"`
	BootDisk   bool    `json:"bootDisk"`
}

// VMCreateSpec is the body of POST /v1/projects/{id}/vms.
type VMCreateSpec struct {
	// Name, e.g. "web-1".
	Name string `json:"name"`
	// Flavor names a vm flavor, e.g. "small".
	Flavor        string                   `json:"flavor"`
	SourceImageID string                   `json:"sourceImageId,omitempty"`
	AttachedDisks []AttachedDiskCreateSpec `json:"attachedDisks"`
	// Affinities constrain placement: kinds vm, disk, host (id or address),
	// availabilityZone, hostTag (ours), datastore (id or name),
	// datastoreTag, e.g. [{"kind": "availabilityZone", "id": "zone-a"}].
	Affinities  []LocalitySpec    `json:"affinities,omitempty"`
	Subnets     []string          `json:"subnets,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	// PlacementGroup (ours) names a group of VMs placed apart or together,
	// e.g. {"name": "web", "policy": "anti-affinity", "scope": "host",
	// "strict": true}: three replicas never share a host.
	PlacementGroup *PlacementGroupSpec `json:"placementGroup,omitempty"`
	// PlacementStrategy (ours) is "spread" (default: the emptiest host) or
	// "pack" (the fullest host that fits).
	PlacementStrategy string `json:"placementStrategy,omitempty"`
	// Start (ours) boots the VM once it is made, in the same CREATE_VM
	// task: the host makes and boots it in one go, and the task completes
	// with the VM STARTED (`photon vm create --start`).
	Start bool `json:"start,omitempty"`
}

// VMBatchCreateSpec (ours) creates Count VMs from one spec, named
// "<name>-1" … "<name>-<count>" (POST /v1/projects/{id}/vms/batch), e.g.
// {"name": "web", "flavor": "small", "attachedDisks": [...], "count": 10}.
// Each VM is created as a single create would make it, with its own task.
type VMBatchCreateSpec struct {
	VMCreateSpec
	Count int `json:"count"` // 1 to MaxVMBatch
}

// MaxVMBatch bounds the VMs one batch create makes.
const MaxVMBatch = 1000

// VMBatch answers a batch create: one item per VM, in name order.
type VMBatch struct {
	Items []VMBatchItem `json:"items"`
}

// VMBatchItem is one VM of a batch create: its create task (ERROR when
// placement refused it, like a single create's), or why it was refused at
// once (e.g. QuotaError, NameTaken).
type VMBatchItem struct {
	Name  string `json:"name"`
	Task  *Task  `json:"task,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// Placement group policies and scopes.
const (
	PlacementAntiAffinity = "anti-affinity"
	PlacementAffinity     = "affinity"
	PlacementScopeHost    = "host"
	PlacementScopeZone    = "zone"
)

// PlacementGroupSpec names a VM's placement group (ours). The first VM
// that names a group creates it with its policy; later ones join it (a
// different policy, scope or strictness is refused). The group goes away
// with its last VM.
type PlacementGroupSpec struct {
	// Name, unique in the project, e.g. "web".
	Name string `json:"name"`
	// Policy is "anti-affinity" (default: members apart) or "affinity"
	// (together).
	Policy string `json:"policy,omitempty"`
	// Scope is "host" (default) or "zone".
	Scope string `json:"scope,omitempty"`
	// Strict refuses a placement that breaks the policy; otherwise it is
	// only scored lower.
	Strict bool `json:"strict,omitempty"`
}

// PlacementPreview is the answer of POST /v1/projects/{id}/vms?dryRun=true
// (ours): where the VM would go and why, with nothing created.
type PlacementPreview struct {
	// Placed is false when no host fits; Error then says why per constraint.
	Placed bool   `json:"placed"`
	Error  *Error `json:"error,omitempty"`
	// HostID, Host (address) and DatastoreID of the chosen host.
	HostID      string `json:"hostId,omitempty"`
	Host        string `json:"host,omitempty"`
	DatastoreID string `json:"datastoreId,omitempty"`
	// Score of the chosen host (higher is better).
	Score float64 `json:"score"`
	// Hosts in the fleet, hosts Considered (a sample on large fleets) and
	// how many of them were Feasible.
	Hosts      int `json:"hosts"`
	Considered int `json:"considered"`
	Feasible   int `json:"feasible"`
	// Eliminated counts considered hosts per reason, e.g. {"lacked memory": 3}.
	Eliminated map[string]int `json:"eliminated"`
	// Candidates are the best-scored hosts, best first.
	Candidates []PlacementCandidate `json:"candidates"`
}

// PlacementCandidate is one scored host of a PlacementPreview.
type PlacementCandidate struct {
	HostID      string  `json:"hostId"`
	DatastoreID string  `json:"datastoreId"`
	Score       float64 `json:"score"`
}

// AttachedDisk is a disk as listed on its VM.
type AttachedDisk struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Kind       string  `json:"kind"`
	Flavor     string  `json:"flavor"`
	CapacityGB float64 `json:"capacityGb"`
	BootDisk   bool    `json:"bootDisk"`
	State      string  `json:"state"`
}

// VM is a virtual machine.
type VM struct {
	Base
	Name          string            `json:"name"`
	Flavor        string            `json:"flavor"`
	SourceImageID string            `json:"sourceImageId,omitempty"`
	State         string            `json:"state"`
	Host          string            `json:"host,omitempty"`
	Datastore     string            `json:"datastore,omitempty"`
	AttachedDisks []AttachedDisk    `json:"attachedDisks"`
	AttachedIsos  []string          `json:"attachedIsos"`
	Metadata      map[string]string `json:"metadata"`
	Tags          []string          `json:"tags"`
	Cost          []QuotaLineItem   `json:"cost"`
	FloatingIP    string            `json:"floatingIp,omitempty"`
	// Ours: owner, placement and the reason of an ERROR.
	ProjectID   string            `json:"projectId"`
	HostID      string            `json:"hostId,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	ErrorReason string            `json:"errorReason,omitempty"`
}

// VMDiskOperation is the body of attach_disk / detach_disk: {"diskId": "..."}.
type VMDiskOperation struct {
	DiskID    string            `json:"diskId"`
	Arguments map[string]string `json:"arguments,omitempty"`
}

// VMMetadata is the body of set_metadata.
type VMMetadata struct {
	Metadata map[string]string `json:"metadata"`
}

// Tag is the body of POST /v1/vms/{id}/tags: {"value": "env:prod"}.
type Tag struct {
	Value string `json:"value"`
}

// DiskCreateSpec is the body of POST /v1/projects/{id}/disks.
type DiskCreateSpec struct {
	Name string `json:"name"`
	// Kind is persistent-disk.
	Kind       string         `json:"kind"`
	Flavor     string         `json:"flavor"`
	CapacityGB float64        `json:"capacityGb"`
	Affinities []LocalitySpec `json:"affinities,omitempty"`
	Tags       []string       `json:"tags,omitempty"`
}

// PersistentDisk is a disk that outlives VMs.
type PersistentDisk struct {
	Base
	Name       string          `json:"name"`
	Flavor     string          `json:"flavor"`
	CapacityGB float64         `json:"capacityGb"`
	Datastore  string          `json:"datastore"`
	State      string          `json:"state"`
	VMs        []string        `json:"vms"`
	Cost       []QuotaLineItem `json:"cost"`
	Tags       []string        `json:"tags"`
	ProjectID  string          `json:"projectId"`
}

// Image states and replication types.
const (
	ImageCreating      = "CREATING"
	ImageReady         = "READY"
	ImageError         = "ERROR"
	ImagePendingDelete = "PENDING_DELETE"

	ReplicationEager    = "EAGER"
	ReplicationOnDemand = "ON_DEMAND"
)

// ImageScope says who sees an image: {"kind": "project", "id": "..."} or
// {"kind": "infrastructure"}.
type ImageScope struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
}

// ImageSetting is a hint carried by an image, e.g. {"name": "cpu", "defaultValue": "2"}.
type ImageSetting struct {
	Name         string `json:"name"`
	DefaultValue string `json:"defaultValue"`
}

// Image is an uploaded disk image.
type Image struct {
	Base
	Name string `json:"name"`
	// Size in bytes.
	Size                int64          `json:"size"`
	State               string         `json:"state"`
	ReplicationType     string         `json:"replicationType"`
	ReplicationProgress string         `json:"replicationProgress"`
	SeedingProgress     string         `json:"seedingProgress"`
	Scope               ImageScope     `json:"scope"`
	Settings            []ImageSetting `json:"settings"`
	Tags                []string       `json:"tags"`
	// Ours: content checksum and format.
	SHA256 string `json:"sha256,omitempty"`
	Format string `json:"format,omitempty"`
	// VirtualSize is the size in bytes of the disk the image holds (a
	// qcow2's virtual size, a raw image's length): a VM's boot disk made
	// from it is at least this large and is charged for it. Zero on images
	// stored before it was recorded (Size stands in).
	VirtualSize int64 `json:"virtualSize,omitempty"`
	// Users counts VMs made from the image.
	Users int `json:"users"`
}
