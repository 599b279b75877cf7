package api

// Object kinds, as they appear in "kind" and task entities.
const (
	KindTenant  = "tenant"
	KindProject = "project"
	KindFlavor  = "flavor"
	KindTask    = "task"
)

// Object states.
const (
	StateCreating      = "CREATING"
	StateReady         = "READY"
	StatePendingDelete = "PENDING_DELETE"
	StateError         = "ERROR"
	StateDeleted       = "DELETED"
)

// Base holds the fields every object has.
type Base struct {
	// ID is the object's identifier, e.g. "0193c9b2-...".
	ID string `json:"id"`
	// Kind names the object type, e.g. "tenant".
	Kind string `json:"kind"`
	// SelfLink is the absolute URL of the object.
	SelfLink string `json:"selfLink"`
}

// List is every collection's body: {"items": [...], "nextPageLink": "..."}.
type List[T any] struct {
	Items []T `json:"items"`
	// NextPageLink is the path of the next page, empty on the last.
	NextPageLink string `json:"nextPageLink"`
	// PreviousPageLink is kept for compatibility; always empty.
	PreviousPageLink string `json:"previousPageLink"`
}

// SecurityGroup of a tenant or project.
type SecurityGroup struct {
	Name      string `json:"name"`
	Inherited bool   `json:"inherited"`
}

// ProjectRef is a project as listed inside its tenant.
type ProjectRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// TenantCreateSpec is the body of POST /v1/tenants.
type TenantCreateSpec struct {
	// Name, e.g. "engineering".
	Name           string     `json:"name"`
	SecurityGroups []string   `json:"securityGroups,omitempty"`
	Quota          *QuotaSpec `json:"quota,omitempty"`
}

// Tenant is a top-level account that holds projects and quota.
type Tenant struct {
	Base
	Name           string          `json:"name"`
	State          string          `json:"state"`
	Projects       []ProjectRef    `json:"projects"`
	SecurityGroups []SecurityGroup `json:"securityGroups"`
	Quota          Quota           `json:"quota"`
	Tags           []string        `json:"tags"`
}

// ProjectCreateSpec is the body of POST /v1/tenants/{id}/projects.
type ProjectCreateSpec struct {
	// Name, unique within the tenant, e.g. "web".
	Name           string     `json:"name"`
	Quota          *QuotaSpec `json:"quota,omitempty"`
	SecurityGroups []string   `json:"securityGroups,omitempty"`
	// DefaultRouterPrivateIPCidr, e.g. "192.168.0.0/16" (used by networking).
	DefaultRouterPrivateIPCidr string `json:"defaultRouterPrivateIpCidr,omitempty"`
}

// Project is a unit of quota and ownership inside a tenant.
type Project struct {
	Base
	Name                       string          `json:"name"`
	State                      string          `json:"state"`
	TenantID                   string          `json:"tenantId"`
	Quota                      Quota           `json:"quota"`
	SecurityGroups             []SecurityGroup `json:"securityGroups"`
	DefaultRouterPrivateIPCidr string          `json:"defaultRouterPrivateIpCidr,omitempty"`
	Tags                       []string        `json:"tags"`
}

// Flavor kinds.
const (
	FlavorKindVM             = "vm"
	FlavorKindEphemeralDisk  = "ephemeral-disk"
	FlavorKindPersistentDisk = "persistent-disk"
)

// FlavorCreateSpec is the body of POST /v1/flavors.
type FlavorCreateSpec struct {
	// Name, unique per kind, e.g. "small".
	Name string `json:"name"`
	// Kind is vm, ephemeral-disk or persistent-disk.
	Kind string `json:"kind"`
	// Cost lists what one object of this flavor consumes,
	// e.g. [{"key":"vm.cpu","value":2,"unit":"COUNT"}].
	Cost []QuotaLineItem `json:"cost"`
	Tags []string        `json:"tags,omitempty"`
}

// Flavor is a named size of VM or disk and what it costs against quota.
type Flavor struct {
	Base
	Name  string          `json:"name"`
	Kind  string          `json:"kind"`
	Cost  []QuotaLineItem `json:"cost"`
	State string          `json:"state"`
	Tags  []string        `json:"tags"`
	// Users counts live objects made from the flavor (ours).
	Users int `json:"users"`
}

// Task states.
const (
	TaskQueued    = "QUEUED"
	TaskStarted   = "STARTED"
	TaskCompleted = "COMPLETED"
	TaskError     = "ERROR"
)

// Entity names the object a task acts on.
type Entity struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

// Step is one ordered step of a task.
type Step struct {
	Sequence    int               `json:"sequence"`
	Operation   string            `json:"operation"`
	State       string            `json:"state"`
	QueuedTime  int64             `json:"queuedTime"`
	StartedTime int64             `json:"startedTime"`
	EndTime     int64             `json:"endTime"`
	Errors      []Error           `json:"errors"`
	Warnings    []Error           `json:"warnings"`
	Options     map[string]string `json:"options"`
}

// Task is an operation in progress or done: every state-changing call returns one.
type Task struct {
	Base
	// Operation, e.g. "CREATE_PROJECT".
	Operation string `json:"operation"`
	// State is QUEUED, STARTED, COMPLETED or ERROR.
	State string `json:"state"`
	// Times in milliseconds since the epoch.
	QueuedTime         int64          `json:"queuedTime"`
	StartedTime        int64          `json:"startedTime"`
	EndTime            int64          `json:"endTime"`
	Entity             Entity         `json:"entity"`
	Steps              []Step         `json:"steps"`
	ResourceProperties map[string]any `json:"resourceProperties,omitempty"`
	// Owner scopes the task for listing: the tenant and project it belongs to (ours).
	TenantID  string `json:"tenantId,omitempty"`
	ProjectID string `json:"projectId,omitempty"`
}

// Done reports whether the task has ended.
func (t *Task) Done() bool { return t.State == TaskCompleted || t.State == TaskError }

// Err returns the task's first step error as an *Error, or nil if it did not fail.
func (t *Task) Err() error {
	if t.State != TaskError {
		return nil
	}
	for _, s := range t.Steps {
		if len(s.Errors) > 0 {
			e := s.Errors[0]
			return &e
		}
	}
	return &Error{Code: CodeInternalError, Message: "task " + t.ID + " failed"}
}

// Info is the body of GET /v1/info.
type Info struct {
	BaseVersion   string `json:"baseVersion"`
	FullVersion   string `json:"fullVersion"`
	GitCommitHash string `json:"gitCommitHash"`
	NetworkType   string `json:"networkType"`
}

// ComponentStatus is one component in SystemStatus.
type ComponentStatus struct {
	Component string `json:"component"`
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
}

// SystemStatus is the body of GET /v1/system/status.
type SystemStatus struct {
	// Status is READY, or ERROR when a component is down.
	Status     string            `json:"status"`
	Components []ComponentStatus `json:"components"`
}

// SystemUsage is the body of GET /v1/system/usage (system administrators
// only: the counts are the whole cloud's).
type SystemUsage struct {
	NumberHosts      int `json:"numberHosts"`
	NumberVMs        int `json:"numberVMs"`
	NumberTenants    int `json:"numberTenants"`
	NumberProjects   int `json:"numberProjects"`
	NumberDatastores int `json:"numberDatastores"`
	NumberServices   int `json:"numberServices"`
}

// AuthInfo is the body of GET /v1/system/auth.
type AuthInfo struct {
	Enabled  bool   `json:"enabled"`
	Endpoint string `json:"endpoint,omitempty"`
	Port     int    `json:"port,omitempty"`
}
