package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/httpapi"
	"github.com/photon-cloud/photon/internal/photontest"
)

// The isolation matrix: every route of the route table × every role ×
// an object of the caller's own tenant and of a foreign one, through the
// real HTTPS server. The expected status of each cell is derived from the
// route's declared Perm (not from a list of paths), so a route added with
// any Perm is covered, and a route whose Perm authorization has no rule
// for fails.

// Roles of the matrix. Users get theirs from role bindings in tenant A
// (project A1); "own" objects are in A / A1, "foreign" ones in tenant B.
var matrixRoles = []string{"system-admin", "tenant-admin", "project-user", "project-viewer", "no-role", "host", "anonymous"}

// level of each user role in tenant A and on project A1 (auth.Level*).
var roleLevels = map[string]struct{ tenant, project int }{
	"tenant-admin":   {auth.LevelAdmin, auth.LevelAdmin},
	"project-user":   {auth.LevelViewer, auth.LevelUser},
	"project-viewer": {auth.LevelViewer, auth.LevelViewer},
	"no-role":        {auth.LevelNone, auth.LevelNone},
}

// fixture is the object a cell's {id} names.
type fixture struct {
	id string
	// real: the object exists (else a random id: every caller but a system
	// administrator must get 404, and nothing leaks either way).
	real bool
	// public objects (flavors) are readable by all and changed by admins.
	public bool
	// projectless objects (tenants) are checked at the tenant level.
	projectless bool
	// sibling: another project of the caller's tenant, on which project
	// roles of A1 give nothing.
	sibling bool
}

type matrix struct {
	t       *testing.T
	c       *photontest.Cloud
	admin   *client.Client
	tokens  map[string]string // role -> bearer token ("" for anonymous)
	tenant  [2]string         // own, foreign
	project [2]string
	task    [2]string
	image   [2]string
	vm      [2]string
	disk    [2]string
	router  [2]string
	subnet  [2]string
	hostID  string
	flavor  string
	seq     int
}

func newMatrix(t *testing.T) *matrix {
	c := photontest.NewController(t, "")
	m := &matrix{t: t, c: c, admin: c.Client, tokens: map[string]string{}}
	cl := m.admin
	computeOK := m.startHost()
	for i, name := range []string{"mxA", "mxB"} {
		task := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: name, Quota: quota("vm.cpu", 200, "COUNT")}))
		m.tenant[i] = task.Entity.ID
		ptask := waitFor(t, cl)(cl.CreateProject(ctx(), m.tenant[i], &api.ProjectCreateSpec{Name: name + "1", Quota: quota("vm.cpu", 50, "COUNT")}))
		m.project[i], m.task[i] = ptask.Entity.ID, ptask.ID
		m.image[i] = m.newImage(m.project[i])
		// The project's default subnet: its VMs get a NIC on it.
		m.router[i] = m.newRouter(m.project[i])
		m.subnet[i] = m.newSubnet(m.router[i])
		if m.subnet[i] != "" {
			var task api.Task
			err := m.admin.Do(ctx(), "POST", "/v1/subnets/"+m.subnet[i]+"/set_default", nil, &task)
			m.settle1("default subnet", &task, err)
		}
		if computeOK {
			m.vm[i], m.disk[i] = m.newVM(m.project[i]), m.newDisk(m.project[i])
		}
	}
	m.flavor = m.newFlavor()

	for _, role := range []string{"system-admin", "tenant-admin", "project-user", "project-viewer", "no-role"} {
		name := strings.ReplaceAll(role, "-", "")
		waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: name, Password: "password-" + name}))
		var path string
		switch role {
		case "system-admin":
			path = client.IAMPath("system", "")
		case "tenant-admin":
			path = client.IAMPath("tenant", m.tenant[0])
		case "project-user", "project-viewer":
			path = client.IAMPath("project", m.project[0])
		}
		if path != "" {
			waitFor(t, cl)(cl.PatchIAM(ctx(), path, api.RoleBindingDelta{Action: api.ActionAdd, Role: role, Subject: "user:" + name}))
		}
		tok, err := cl.Login(ctx(), name, "password-"+name)
		if err != nil {
			t.Fatalf("login %s: %v", name, err)
		}
		m.tokens[role] = tok.AccessToken
	}
	m.hostID, m.tokens["host"] = m.joinHost()
	m.tokens["anonymous"] = ""
	return m
}

// newImage uploads a small image into a project; "" if images are not
// served (the matrix then uses random image ids).
func (m *matrix) newImage(projectID string) string {
	m.seq++
	task, err := m.admin.UploadImage(ctx(), bytes.NewReader(make([]byte, 4096)), 4096,
		client.ImageUpload{Name: fmt.Sprintf("img%d", m.seq), ProjectID: projectID, FileName: "disk.raw"})
	if err == nil {
		task, err = m.admin.WaitTask(ctx(), task)
	}
	if err != nil || task.State != api.TaskCompleted {
		m.t.Logf("image fixture unavailable (%v); image routes use random ids", err)
		return ""
	}
	return task.Entity.ID
}

// startHost runs an agent on the fake driver and makes the flavors VMs and
// disks need; false if compute is not served (VM and disk routes then use
// random ids).
func (m *matrix) startHost() bool {
	if m.c.Server.Hosts == nil {
		return false
	}
	photontest.NewAgent(m.t, m.c, fake.Config{CPUCount: 64, MemoryMB: 64 * 1024})
	for _, f := range []api.FlavorCreateSpec{
		{Name: "mxsmall", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "mxeph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
		{Name: "mxpd", Kind: "persistent-disk", Cost: []api.QuotaLineItem{{Key: "persistent-disk", Value: 1, Unit: "COUNT"}}},
	} {
		waitFor(m.t, m.admin)(m.admin.CreateFlavor(ctx(), &f))
	}
	return true
}

// settle waits up to a minute for a task; "" and a log line if it fails.
func (m *matrix) settle(what string) func(*api.Task, error) string {
	return func(task *api.Task, err error) string { return m.settle1(what, task, err) }
}

func (m *matrix) settle1(what string, task *api.Task, err error) string {
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx(), time.Minute)
		defer cancel()
		if task, err = m.admin.WaitTask(wctx, task); err == nil {
			err = task.Err()
		}
	}
	if err != nil {
		m.t.Logf("%s fixture unavailable (%v); its routes use random ids", what, err)
		return ""
	}
	return task.Entity.ID
}

func (m *matrix) newVM(projectID string) string {
	return m.settle("vm")(m.admin.CreateVM(ctx(), projectID, &api.VMCreateSpec{Name: fmt.Sprintf("mxvm%d", m.nextSeq()), Flavor: "mxsmall",
		AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "mxeph", CapacityGB: 1, BootDisk: true}}}))
}

func (m *matrix) newDisk(projectID string) string {
	return m.settle("disk")(m.admin.CreateDisk(ctx(), projectID, &api.DiskCreateSpec{Name: fmt.Sprintf("mxd%d", m.nextSeq()),
		Kind: "persistent-disk", Flavor: "mxpd", CapacityGB: 1}))
}

func (m *matrix) newRouter(projectID string) string {
	var task api.Task
	err := m.admin.Do(ctx(), "POST", "/v1/projects/"+projectID+"/routers", &api.RouterCreateSpec{Name: fmt.Sprintf("mxr%d", m.nextSeq()), PrivateIPCidr: "10.0.0.0/8"}, &task)
	return m.settle1("router", &task, err)
}

// newSubnet makes a /24 of router routerID, a new one each time.
func (m *matrix) newSubnet(routerID string) string {
	if routerID == "" {
		return ""
	}
	seq := m.nextSeq()
	var task api.Task
	err := m.admin.Do(ctx(), "POST", "/v1/routers/"+routerID+"/subnets", &api.SubnetCreateSpec{Name: fmt.Sprintf("mxs%d", seq),
		PrivateIPCidr: fmt.Sprintf("10.%d.%d.0/24", seq/256, seq%256)}, &task)
	return m.settle1("subnet", &task, err)
}

func (m *matrix) newFlavor() string {
	m.seq++
	task := waitFor(m.t, m.admin)(m.admin.CreateFlavor(ctx(), &api.FlavorCreateSpec{Name: fmt.Sprintf("mxf%d", m.seq), Kind: "vm",
		Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}}))
	return task.Entity.ID
}

// joinHost joins a host through a join token and returns its id and
// credential; if hosts are not served, a host principal is registered
// directly.
func (m *matrix) joinHost() (string, string) {
	jt, err := m.admin.CreateJoinToken(ctx(), "")
	if err == nil {
		var resp api.HostJoinResponse
		err = m.c.NewClient(m.t, "").Do(ctx(), "POST", "/v1/agent/join", &api.HostJoinRequest{JoinToken: jt.Token, Address: "10.9.9.9",
			Capacity: api.HostResources{CPUCount: 4, MemoryMB: 4096}, Hypervisor: "fake"}, &resp)
		if err == nil {
			return resp.HostID, resp.Credential
		}
	}
	m.t.Logf("host join unavailable (%v); registering a host principal", err)
	id, tok := uuid.NewString(), auth.NewToken()
	if err := m.c.Tokens.Register(ctx(), tok, auth.Principal{Subject: "host:" + id, Role: auth.RoleHost}); err != nil {
		m.t.Fatal(err)
	}
	return id, tok
}

func collectionOf(path string) string {
	before, _, ok := strings.Cut(path, "/{id}")
	if !ok {
		return ""
	}
	return before[strings.LastIndex(before, "/")+1:]
}

// fixtureFor picks the object of a cell; for DELETE of a real object it
// makes a fresh one, so allowed deletes do not eat the shared fixtures.
func (m *matrix) fixtureFor(rt httpapi.Route, foreign bool) fixture {
	i := 0
	if foreign {
		i = 1
	}
	del := rt.Method == http.MethodDelete && !strings.HasSuffix(rt.Path, "/quota")
	switch collectionOf(rt.Path) {
	case "":
		return fixture{}
	case "tenants":
		return fixture{id: m.tenant[i], real: true, projectless: true}
	case "projects":
		if del {
			task := waitFor(m.t, m.admin)(m.admin.CreateProject(ctx(), m.tenant[i], &api.ProjectCreateSpec{Name: fmt.Sprintf("del%d", m.nextSeq()), Quota: quota("vm.cpu", 1, "COUNT")}))
			return fixture{id: task.Entity.ID, real: true, sibling: true}
		}
		return fixture{id: m.project[i], real: true}
	case "tasks":
		return fixture{id: m.task[i], real: true}
	case "flavors":
		if del {
			return fixture{id: m.newFlavor(), real: true, public: true}
		}
		return fixture{id: m.flavor, real: true, public: true}
	case "images":
		id := m.image[i]
		if del && id != "" {
			id = m.newImage(m.project[i])
		}
		if id == "" {
			return fixture{id: uuid.NewString()}
		}
		return fixture{id: id, real: true}
	case "vms", "disks":
		id, create := m.vm[i], m.newVM
		if collectionOf(rt.Path) == "disks" {
			id, create = m.disk[i], m.newDisk
		}
		if del && id != "" {
			id = create(m.project[i])
		}
		if id == "" {
			return fixture{id: uuid.NewString()}
		}
		return fixture{id: id, real: true}
	case "routers", "subnets":
		id := m.router[i]
		if collectionOf(rt.Path) == "subnets" {
			id = m.subnet[i]
			if del && id != "" {
				id = m.newSubnet(m.router[i])
			}
		} else if del && id != "" {
			id = m.newRouter(m.project[i])
		}
		if id == "" {
			return fixture{id: uuid.NewString()}
		}
		return fixture{id: id, real: true}
	case "users":
		name := fmt.Sprintf("victim%d", m.nextSeq())
		waitFor(m.t, m.admin)(m.admin.CreateUser(ctx(), &api.UserCreateSpec{Name: name, Password: "password-x"}))
		return fixture{id: name, real: true}
	case "hosts":
		if rt.Perm == httpapi.PermHost && !foreign {
			return fixture{id: m.hostID, real: true}
		}
	}
	return fixture{id: uuid.NewString()}
}

func (m *matrix) nextSeq() int { m.seq++; return m.seq }

// outcome is what a cell expects: an exact status, or "pass" (the request
// got past authorization: neither 401, 403 nor a hiding 404, never 5xx).
type outcome struct {
	status int
	pass   bool
}

func (o outcome) String() string {
	if o.pass {
		return "allowed"
	}
	return fmt.Sprint(o.status)
}

var (
	allowed      = outcome{pass: true}
	unauthorized = outcome{status: 401}
	forbidden    = outcome{status: 403}
	hidden       = outcome{status: 404}
)

// expect derives a cell's outcome from the route's Perm, the role, and
// whether the object is the caller's own. ok=false: the Perm has no rule
// here, which fails the test.
func expect(rt httpapi.Route, role string, foreign bool, fx fixture) (outcome, bool) {
	if rt.Perm == httpapi.PermPublic {
		return allowed, true
	}
	if role == "anonymous" {
		return unauthorized, true
	}
	if rt.Perm == httpapi.PermHost {
		switch {
		case role != "host":
			return forbidden, true
		case foreign && strings.Contains(rt.Path, "{id}"):
			return hidden, true
		}
		return allowed, true
	}
	if role == "host" {
		return forbidden, true
	}
	if rt.Perm == httpapi.PermAuthenticated || role == "system-admin" {
		return allowed, true
	}
	if rt.Perm == httpapi.PermSystemAdmin {
		return forbidden, true
	}
	write := false
	switch rt.Perm {
	case httpapi.PermTenantRead, httpapi.PermProjectRead, httpapi.PermObjectRead:
	case httpapi.PermTenantWrite, httpapi.PermProjectWrite, httpapi.PermObjectWrite:
		write = true
	default:
		return outcome{}, false
	}
	if !fx.real {
		return hidden, true
	}
	if fx.public {
		if write {
			return forbidden, true
		}
		return allowed, true
	}
	if foreign {
		return hidden, true
	}
	lv := roleLevels[role]
	if fx.sibling && lv.project < auth.LevelAdmin {
		lv.project = auth.LevelNone
	}
	visible := lv.project >= auth.LevelViewer || (fx.projectless && lv.tenant >= auth.LevelViewer)
	if !visible {
		return hidden, true
	}
	need, have := auth.LevelViewer, lv.project
	switch rt.Perm {
	case httpapi.PermTenantRead:
		have = lv.tenant
	case httpapi.PermTenantWrite:
		need, have = auth.LevelAdmin, lv.tenant
	case httpapi.PermProjectWrite, httpapi.PermObjectWrite:
		need = auth.LevelUser
		if fx.projectless {
			need, have = auth.LevelAdmin, lv.tenant
		}
	default:
		if fx.projectless {
			have = lv.tenant
		}
	}
	if have < need {
		return forbidden, true
	}
	return allowed, true
}

// send makes one cell's request. State-changing requests carry a
// malformed JSON body, so an allowed one stops at decoding (400) and
// changes nothing; a DELETE acts on a fixture made for it.
func (m *matrix) send(hc *http.Client, rt httpapi.Route, id, token string) (int, string, error) {
	path := strings.ReplaceAll(rt.Path, "{id}", id)
	for strings.Contains(path, "{") {
		i, j := strings.Index(path, "{"), strings.Index(path, "}")
		path = path[:i] + uuid.NewString() + path[j+1:]
	}
	var body io.Reader
	if rt.Method == http.MethodPost || rt.Method == http.MethodPut || rt.Method == http.MethodPatch ||
		(rt.Method == http.MethodDelete && strings.HasSuffix(rt.Path, "/quota")) {
		body = strings.NewReader(`{"matrix":`)
	}
	cx, cancel := context.WithTimeout(ctx(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cx, rt.Method, m.c.URL+path, body)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), nil
}

func TestIsolationMatrix(t *testing.T) {
	m := newMatrix(t)
	if probs := m.c.Server.RuleProblems(); len(probs) > 0 {
		t.Errorf("routes without an authorization rule:\n  %s", strings.Join(probs, "\n  "))
	}
	hc := &http.Client{Transport: httpTransport(t, m.c)}
	routes := m.c.Server.Routes()
	cells, allowedCells := 0, 0
	for _, rt := range routes {
		for _, role := range matrixRoles {
			for _, foreign := range []bool{false, true} {
				cells++
				tenancy := "own"
				if foreign {
					tenancy = "foreign"
				}
				name := fmt.Sprintf("%s %s as %s on %s", rt.Method, rt.Path, role, tenancy)
				fx := m.fixtureFor(rt, foreign)
				want, ok := expect(rt, role, foreign, fx)
				if !ok {
					t.Errorf("%s: Perm %d has no rule in the matrix", name, rt.Perm)
					continue
				}
				status, body, err := m.send(hc, rt, fx.id, m.tokens[role])
				if errors.Is(err, context.DeadlineExceeded) && want.pass {
					allowedCells++ // a long poll: it got past authorization
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				switch {
				case status >= 500:
					t.Errorf("%s = %d %s, want %v", name, status, body, want)
				case want.pass:
					allowedCells++
					// A 404 may name another path wildcard ({image}), not {id}.
					if status == 401 || status == 403 || (status == 404 && fx.real && strings.Count(rt.Path, "{") == 1) {
						t.Errorf("%s = %d %s, want allowed", name, status, body)
					}
				case status != want.status:
					t.Errorf("%s = %d %s, want %d", name, status, body, want.status)
				}
			}
		}
	}
	t.Logf("isolation matrix: %d routes × %d roles × 2 tenancies = %d cells (%d allowed, %d refused)",
		len(routes), len(matrixRoles), cells, allowedCells, cells-allowedCells)
	if cells != len(routes)*len(matrixRoles)*2 {
		t.Errorf("cells %d", cells)
	}
	t.Run("body ids", func(t *testing.T) { m.bodyIDCells(t, hc) })
}

// bodyBuilders make a valid body of a route (by "METHOD path") carrying
// id at a field of Route.BodyIDs; seq keeps names apart.
var bodyBuilders = map[string]func(field, id string, seq int) any{
	"POST /v1/projects/{id}/vms": func(f, id string, seq int) any { return vmBody(f, id, seq) },
	"POST /v1/projects/{id}/vms/batch": func(f, id string, seq int) any {
		return &api.VMBatchCreateSpec{VMCreateSpec: *vmBody(f, id, seq), Count: 1}
	},
	"POST /v1/projects/{id}/disks": func(f, id string, seq int) any {
		return &api.DiskCreateSpec{Name: fmt.Sprintf("bd%d", seq), Kind: "persistent-disk", Flavor: "mxpd", CapacityGB: 1,
			Affinities: []api.LocalitySpec{{Kind: "vm", ID: id}}}
	},
	"POST /v1/vms/{id}/acquire_floating_ip": func(f, id string, seq int) any { return &api.FloatingIPSpec{NetworkID: id} },
	"POST /v1/vms/{id}/attach_disk":         func(f, id string, seq int) any { return &api.VMDiskOperation{DiskID: id} },
	"POST /v1/vms/{id}/detach_disk":         func(f, id string, seq int) any { return &api.VMDiskOperation{DiskID: id} },
}

func vmBody(field, id string, seq int) *api.VMCreateSpec {
	spec := &api.VMCreateSpec{Name: fmt.Sprintf("bvm%d", seq), Flavor: "mxsmall",
		AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "mxeph", CapacityGB: 1, BootDisk: true}}}
	switch field {
	case "sourceImageId":
		spec.SourceImageID = id
	case "affinities[kind=vm].id":
		spec.Affinities = []api.LocalitySpec{{Kind: "vm", ID: id}}
	case "affinities[kind=disk].id":
		spec.Affinities = []api.LocalitySpec{{Kind: "disk", ID: id}}
	case "subnets[]":
		spec.Subnets = []string{id}
	}
	return spec
}

// bodyIDCells: for every id a route's body carries (Route.BodyIDs), tenant
// A's project-user names tenant B's object there and must get exactly the
// answer a missing id gets, with B's object unchanged; its own object
// there is let through (not hidden).
func (m *matrix) bodyIDCells(t *testing.T, hc *http.Client) {
	before := m.foreignState(t)
	tok := m.tokens["project-user"]
	cells := 0
	for _, rt := range m.c.Server.Routes() {
		for _, b := range rt.BodyIDs {
			name := fmt.Sprintf("%s %s with %s", rt.Method, rt.Path, b.Field)
			build, ok := bodyBuilders[rt.Method+" "+rt.Path]
			if !ok {
				t.Errorf("%s: no body builder in the matrix (bodyBuilders)", name)
				continue
			}
			var own, foreign string
			switch b.Collection {
			case "images":
				own, foreign = m.image[0], m.image[1]
			case "vms":
				own, foreign = m.vm[0], m.vm[1]
			case "disks":
				own, foreign = m.disk[0], m.disk[1]
			case "subnets":
				own, foreign = m.subnet[0], m.subnet[1]
			default:
				t.Errorf("%s: no fixture for collection %q", name, b.Collection)
				continue
			}
			if foreign == "" {
				t.Logf("%s: no %s fixture; skipped", name, b.Collection)
				continue
			}
			var pathID string
			switch collectionOf(rt.Path) {
			case "projects":
				pathID = m.project[0]
			case "vms":
				pathID = m.vm[0]
			}
			if pathID == "" {
				t.Errorf("%s: no own object for the path", name)
				continue
			}
			path := strings.ReplaceAll(rt.Path, "{id}", pathID)
			missing := uuid.NewString()
			ms, mb := m.sendJSON(t, hc, rt.Method, path, tok, build(b.Field, missing, m.nextSeq()))
			fs, fb := m.sendJSON(t, hc, rt.Method, path, tok, build(b.Field, foreign, m.nextSeq()))
			cells++
			fb.Message = strings.ReplaceAll(fb.Message, foreign, missing)
			if ms < 400 || ms >= 500 {
				t.Errorf("%s: a missing id answered %d %+v, want a 4xx", name, ms, mb)
			}
			if fs != ms || fb.Code != mb.Code || fb.Message != mb.Message {
				t.Errorf("%s: tenant B's object answered %d %s %q; a missing id answers %d %s %q", name, fs, fb.Code, fb.Message, ms, mb.Code, mb.Message)
			}
			// The caller's own object is not refused as missing.
			if own != "" {
				os, ob := m.sendJSON(t, hc, rt.Method, path, tok, build(b.Field, own, m.nextSeq()))
				if os >= 500 || (os == ms && ob.Code == mb.Code) {
					t.Errorf("%s: own %s answered %d %+v, as a missing one", name, b.Collection, os, ob)
				}
			}
		}
	}
	if after := m.foreignState(t); after != before {
		t.Errorf("tenant B's objects changed:\n before %s\n after  %s", before, after)
	}
	t.Logf("body ids: %d cells", cells)
	if cells == 0 {
		t.Error("no route declares ids in its body")
	}
}

// foreignState describes tenant B's image, VM and disk as an admin sees
// them (users, state, attachments).
func (m *matrix) foreignState(t *testing.T) string {
	var out []string
	if m.image[1] != "" {
		img, err := m.admin.GetImage(ctx(), m.image[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("image users=%d state=%s", img.Users, img.State))
	}
	if m.vm[1] != "" {
		v, err := m.admin.GetVM(ctx(), m.vm[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("vm state=%s disks=%d floatingIp=%q", v.State, len(v.AttachedDisks), v.FloatingIP))
	}
	if m.disk[1] != "" {
		d, err := m.admin.GetDisk(ctx(), m.disk[1])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("disk state=%s vms=%v", d.State, d.VMs))
	}
	if m.subnet[1] != "" {
		var sn api.Subnet
		if err := m.admin.Do(ctx(), "GET", "/v1/subnets/"+m.subnet[1], nil, &sn); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("subnet name=%s default=%v", sn.Name, sn.IsDefault))
	}
	return strings.Join(out, "; ")
}

// sendJSON sends body as JSON and returns the status and the error body
// (zero on success).
func (m *matrix) sendJSON(t *testing.T, hc *http.Client, method, path, token string, body any) (int, api.Error) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	cx, cancel := context.WithTimeout(ctx(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cx, method, m.c.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var ae struct {
		api.Error
		Items []api.VMBatchItem `json:"items"` // a batch create answers per VM
	}
	_ = json.NewDecoder(resp.Body).Decode(&ae)
	if resp.StatusCode < 300 && len(ae.Items) == 1 && ae.Items[0].Error != nil {
		return ae.Items[0].Error.Status(), *ae.Items[0].Error
	}
	return resp.StatusCode, ae.Error
}

// bodyIDFields says, for each id field of a request body type in api/
// (types named *Spec, *Request, *Operation, *Delta), which Route.BodyIDs
// fields carry it. A new id field in a body fails TestBodyIDsDeclared
// until its routes declare it (and the matrix tries it) or it is listed
// here with no fields and a reason.
var bodyIDFields = map[string][]string{
	"VMCreateSpec.sourceImageId": {"sourceImageId"},
	"LocalitySpec.id":            {"affinities[kind=vm].id", "affinities[kind=disk].id"},
	"VMDiskOperation.diskId":     {"diskId"},
	"FloatingIPSpec.networkId":   {"networkId"},
	// (VMCreateSpec.subnets, not an *Id name, is declared as "subnets[]".)
}

func TestBodyIDsDeclared(t *testing.T) {
	declared := map[string]bool{}
	for _, rt := range httpapi.New(httpapi.Deps{}).Routes() {
		for _, b := range rt.BodyIDs {
			declared[b.Field] = true
		}
	}
	files, err := filepath.Glob("../../api/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("api sources: %v", err)
	}
	found := map[string]bool{}
	fs := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fs, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			name := ts.Name.Name
			if !ok || !(strings.HasSuffix(name, "Spec") || strings.HasSuffix(name, "Request") || strings.HasSuffix(name, "Operation") || strings.HasSuffix(name, "Delta")) {
				return true
			}
			for _, fld := range st.Fields.List {
				if fld.Tag == nil {
					continue
				}
				json, _, _ := strings.Cut(reflect.StructTag(strings.Trim(fld.Tag.Value, "`")).Get("json"), ",")
				if json == "id" || strings.HasSuffix(json, "Id") || strings.HasSuffix(json, "Ids") {
					found[name+"."+json] = true
				}
			}
			return true
		})
	}
	for f := range found {
		fields, ok := bodyIDFields[f]
		if !ok {
			t.Errorf("%s is an id in a request body: declare it in the routes' BodyIDs (and bodyIDFields), or list it in bodyIDFields with a reason", f)
		}
		for _, bf := range fields {
			if !declared[bf] {
				t.Errorf("%s: no route declares the body id %q", f, bf)
			}
		}
	}
	for f := range bodyIDFields {
		if !found[f] {
			t.Errorf("bodyIDFields lists %s, which api/ no longer has", f)
		}
	}
}
