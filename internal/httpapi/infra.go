package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/compute"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/tasks"
)

// infraRoutes are the routes of hosts, datastores, the agent protocol, VMs
// and persistent disks.
func (s *Server) infraRoutes(r func(method, path string, perm Perm, h handler) Route, rs func(method, path string, perm Perm, h streamHandler) Route) []Route {
	return []Route{
		r("GET", "/v1/infrastructure/hosts", PermSystemAdmin, s.listHosts),
		r("POST", "/v1/infrastructure/hosts", PermSystemAdmin, s.createHost),
		r("GET", "/v1/infrastructure/hosts/{id}", PermSystemAdmin, s.getHost),
		r("DELETE", "/v1/infrastructure/hosts/{id}", PermSystemAdmin, s.deleteHost),
		r("GET", "/v1/infrastructure/hosts/{id}/vms", PermSystemAdmin, s.hostVMs),
		r("GET", "/v1/infrastructure/hosts/{id}/tasks", PermSystemAdmin, s.hostTasks),
		r("POST", "/v1/infrastructure/hosts/{id}/suspend", PermSystemAdmin, s.hostMode(hosts.OpSuspendHost)),
		r("POST", "/v1/infrastructure/hosts/{id}/resume", PermSystemAdmin, s.hostMode(hosts.OpResumeHost)),
		r("POST", "/v1/infrastructure/hosts/{id}/enter-maintenance", PermSystemAdmin, s.hostMode(hosts.OpEnterMaintenance)),
		r("POST", "/v1/infrastructure/hosts/{id}/exit-maintenance", PermSystemAdmin, s.hostMode(hosts.OpExitMaintenance)),
		r("POST", "/v1/infrastructure/join-tokens", PermSystemAdmin, s.joinToken),
		r("GET", "/v1/infrastructure/datastores", PermSystemAdmin, s.listDatastores),
		r("GET", "/v1/infrastructure/datastores/{id}", PermSystemAdmin, s.getDatastore),

		r("POST", "/v1/agent/join", PermPublic, s.agentJoin),
		r("GET", "/v1/agent/hosts/{id}/desired", PermHost, s.agentDesired),
		rs("POST", "/v1/agent/hosts/{id}/desired", PermHost, s.agentReportAndPoll),
		rs("POST", "/v1/agent/hosts/{id}/stream", PermHost, s.agentStream),
		r("POST", "/v1/agent/hosts/{id}/status", PermHost, s.agentStatus),
		rs("POST", "/v1/agent/hosts/{id}/console/{session}", PermHost, s.agentConsole),

		r("GET", "/v1/projects/{id}/vms", PermProjectRead, s.listVMs),
		r("POST", "/v1/projects/{id}/vms", PermProjectWrite, s.createVM).with(vmCreateIDs...),
		r("POST", "/v1/projects/{id}/vms/batch", PermProjectWrite, s.createVMs).with(vmCreateIDs...),
		r("GET", "/v1/vms/{id}", PermObjectRead, s.getVM),
		r("DELETE", "/v1/vms/{id}", PermObjectWrite, s.deleteVM),
		r("POST", "/v1/vms/{id}/start", PermObjectWrite, s.vmPower(compute.OpStartVM)),
		r("POST", "/v1/vms/{id}/stop", PermObjectWrite, s.vmPower(compute.OpStopVM)),
		r("POST", "/v1/vms/{id}/restart", PermObjectWrite, s.vmPower(compute.OpRestartVM)),
		r("POST", "/v1/vms/{id}/suspend", PermObjectWrite, s.vmPower(compute.OpSuspendVM)),
		r("POST", "/v1/vms/{id}/resume", PermObjectWrite, s.vmPower(compute.OpResumeVM)),
		r("POST", "/v1/vms/{id}/attach_disk", PermObjectWrite, s.vmDisk(true)).with(BodyID{"diskId", "disks"}),
		r("POST", "/v1/vms/{id}/detach_disk", PermObjectWrite, s.vmDisk(false)).with(BodyID{"diskId", "disks"}),
		r("POST", "/v1/vms/{id}/set_metadata", PermObjectWrite, s.vmMetadata),
		r("POST", "/v1/vms/{id}/tags", PermObjectWrite, s.vmTag),
		r("GET", "/v1/vms/{id}/tasks", PermObjectRead, s.objectTasks),
		rs("GET", "/v1/vms/{id}/console", PermObjectRead, s.vmConsole),

		r("GET", "/v1/projects/{id}/disks", PermProjectRead, s.listDisks),
		r("POST", "/v1/projects/{id}/disks", PermProjectWrite, s.createDisk).with(BodyID{"affinities[kind=vm].id", "vms"}),
		r("GET", "/v1/disks/{id}", PermObjectRead, s.getDisk),
		r("DELETE", "/v1/disks/{id}", PermObjectWrite, s.deleteDisk),
		r("GET", "/v1/disks/{id}/tasks", PermObjectRead, s.objectTasks),
	}
}

// vmCreateIDs are the ids a VM create's body carries (compute checks
// each belongs to, or may be used by, the VM's project).
var vmCreateIDs = []BodyID{{"sourceImageId", "images"}, {"affinities[kind=vm].id", "vms"}, {"affinities[kind=disk].id", "disks"},
	{"subnets[]", "subnets"}}

func unavailable(what string) error {
	return api.Errorf(api.CodeUnavailable, "%s are not enabled on this controller", what)
}

func (l linker) host(h *api.Host) { h.SelfLink = l.base + "/v1/infrastructure/hosts/" + h.ID }
func (l linker) datastore(d *api.Datastore) {
	d.SelfLink = l.base + "/v1/infrastructure/datastores/" + d.ID
}
func (l linker) vm(v *api.VM)               { v.SelfLink = l.base + "/v1/vms/" + v.ID }
func (l linker) disk(d *api.PersistentDisk) { d.SelfLink = l.base + "/v1/disks/" + d.ID }

// Hosts.

func (s *Server) listHosts(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Hosts.List(r.Context(), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).host), nil
}

func (s *Server) createHost(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	var spec api.HostCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Hosts.Create(r.Context(), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) getHost(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	h, err := s.Hosts.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	out := h.Host
	links(r).host(&out)
	return http.StatusOK, &out, nil
}

func (s *Server) deleteHost(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	t, err := s.Hosts.Delete(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

func (s *Server) hostMode(op string) handler {
	return func(r *http.Request) (int, any, error) {
		if s.Hosts == nil {
			return 0, nil, unavailable("hosts")
		}
		t, err := s.Hosts.SetMode(r.Context(), r.PathValue("id"), op)
		return taskAnswer(r, t, err)
	}
}

func (s *Server) hostVMs(r *http.Request) (int, any, error) {
	if s.Hosts == nil || s.Compute == nil {
		return 0, nil, unavailable("hosts")
	}
	if _, err := s.Hosts.Get(r.Context(), r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Compute.HostVMs(r.Context(), r.PathValue("id"), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).vm), nil
}

func (s *Server) hostTasks(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	if _, err := s.Hosts.Get(r.Context(), r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	return s.tasksPage(r, tasks.Filter{EntityID: r.PathValue("id"), State: r.URL.Query().Get("state")})
}

// joinTokenRequest is the body of POST /v1/infrastructure/join-tokens.
type joinTokenRequest struct {
	HostID string `json:"hostId"`
}

func (s *Server) joinToken(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	var req joinTokenRequest
	if r.ContentLength != 0 {
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
	}
	jt, err := s.Hosts.NewJoinToken(r.Context(), req.HostID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, jt, nil
}

func (s *Server) listDatastores(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Hosts.Datastores(r.Context(), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).datastore), nil
}

func (s *Server) getDatastore(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	d, err := s.Hosts.Datastore(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).datastore(d)
	return http.StatusOK, d, nil
}

// The agent protocol.

func (s *Server) agentJoin(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	var req api.HostJoinRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	resp, err := s.Hosts.Join(r.Context(), &req)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, resp, nil
}

// AgentPollWait bounds how long a desired-state long poll is held.
const AgentPollWait = 30 * time.Second

func (s *Server) agentDesired(r *http.Request) (int, any, error) {
	if s.Hosts == nil {
		return 0, nil, unavailable("hosts")
	}
	after, err := afterParam(r)
	if err != nil {
		return 0, nil, err
	}
	ds, err := s.desired(r.Context(), r.PathValue("id"), after)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ds, nil
}

// afterParam is a long poll's ?after=<revision> (0 if absent).
func afterParam(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("after")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, api.Errorf(api.CodeInvalidQuery, "after: want a revision, got %q", v)
	}
	return n, nil
}

// boolParam reads query parameter name: true or false, false if absent.
func boolParam(r *http.Request, name string) (bool, error) {
	switch v := r.URL.Query().Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, api.Errorf(api.CodeInvalidQuery, "%s: want true or false, got %q", name, v)
	}
}

// desired answers a host's long poll.
func (s *Server) desired(ctx context.Context, hostID string, after int64) (*hosts.DesiredState, error) {
	ds, err := s.Hosts.Desired(ctx, hostID, after, AgentPollWait, s.eagerImages)
	if err != nil {
		return nil, err
	}
	ds.ReportOnPoll = s.Compute != nil
	ds.Stream = s.Compute != nil
	return ds, nil
}

// agentReportAndPoll is a status report and the long poll that follows it
// in one request (api.HostDesiredState.ReportOnPoll): the report is
// recorded as agentStatus records it, the status (200) sent at once, so
// that the host knows its report is in before it sends another, and the
// desired state, the body, when it is due. Failing after the status is
// sent, it aborts the response: the host sees an error, not an empty
// answer (which would read as "no VM desired"), and polls again.
func (s *Server) agentReportAndPoll(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if s.Hosts == nil || s.Compute == nil {
		return 0, nil, unavailable("hosts")
	}
	after, err := afterParam(r)
	if err != nil {
		return 0, nil, err
	}
	// A Stream route: wrap sets neither bound.
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	var rep api.HostStatusReport
	if err := decode(r, &rep); err != nil {
		return 0, nil, err
	}
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
	err = s.report(ctx, id, &rep)
	cancel()
	if err != nil {
		return 0, nil, err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
	ds, err := s.desired(r.Context(), id, after)
	if err != nil {
		if r.Context().Err() == nil {
			s.Log.Warn("desired state after a report", "host", id, "error", err)
		}
		panic(http.ErrAbortHandler) // wrap lets it through: net/http resets the stream
	}
	writeBody(w, ds)
	return 0, nil, nil
}

// eagerImagesMaxAge bounds how old the list of EAGER images in a host's
// desired state may be (see images.Service.ListEagerWithin).
const eagerImagesMaxAge = time.Second

// eagerImages lists the images every host should hold (EAGER replication).
func (s *Server) eagerImages(ctx context.Context) ([]string, error) {
	if s.Images == nil {
		return nil, nil
	}
	return s.Images.ListEagerWithin(ctx, eagerImagesMaxAge)
}

func (s *Server) agentStatus(r *http.Request) (int, any, error) {
	if s.Hosts == nil || s.Compute == nil {
		return 0, nil, unavailable("hosts")
	}
	var rep api.HostStatusReport
	if err := decode(r, &rep); err != nil {
		return 0, nil, err
	}
	if err := s.report(r.Context(), r.PathValue("id"), &rep); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// report records a host's status report.
func (s *Server) report(ctx context.Context, id string, rep *api.HostStatusReport) error {
	// No read of the host: only its own credential reaches here (PermHost),
	// and deleting the host deletes the credential in the same transaction.
	if err := s.Hosts.Heartbeat(ctx, id, rep.Capacity); err != nil {
		return err
	}
	if err := s.Hosts.SetUnderlay(ctx, id, rep.UnderlayIP); err != nil {
		return err
	}
	if err := s.Compute.Observe(ctx, id, rep.VMs, rep.Partial); err != nil {
		return err
	}
	if err := s.Hosts.ForgetDeletedDisks(ctx, id, rep.DeletedDisks); err != nil {
		return err
	}
	return s.Hosts.ReportImages(ctx, id, rep.Images)
}

// VMs.

func (s *Server) listVMs(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	if _, err := s.Tenancy.GetProject(r.Context(), r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Compute.ListVMs(r.Context(), r.PathValue("id"), r.URL.Query().Get("name"), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).vm), nil
}

func (s *Server) createVM(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	var spec api.VMCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	if dry, err := boolParam(r, "dryRun"); err != nil {
		return 0, nil, err
	} else if dry {
		pv, err := s.Compute.PreviewVM(r.Context(), r.PathValue("id"), &spec)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, pv, nil
	}
	t, err := s.Compute.CreateVM(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

// createVMs is a batch create: one item per VM, each its task or its
// refusal (mapped like any error answer).
func (s *Server) createVMs(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	var spec api.VMBatchCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	ts, errs, err := s.Compute.CreateVMs(r.Context(), r.PathValue("id"), &spec.VMCreateSpec, spec.Count)
	if err != nil {
		return 0, nil, err
	}
	out := &api.VMBatch{Items: make([]api.VMBatchItem, len(ts))}
	for i, t := range ts {
		it := &out.Items[i]
		it.Name = compute.BatchVMName(spec.Name, i+1)
		if errs[i] != nil {
			it.Error = s.answerError(r, errs[i])
			continue
		}
		links(r).task(t)
		it.Task = t
	}
	// 200, not 201: the items say what was created, possibly nothing.
	return http.StatusOK, out, nil
}

func (s *Server) getVM(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	v, err := s.Compute.GetVM(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).vm(v)
	return http.StatusOK, v, nil
}

func (s *Server) deleteVM(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	t, err := s.Compute.DeleteVM(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

func (s *Server) vmPower(op string) handler {
	return func(r *http.Request) (int, any, error) {
		if s.Compute == nil {
			return 0, nil, unavailable("VMs")
		}
		t, err := s.Compute.Power(r.Context(), r.PathValue("id"), op)
		return taskAnswer(r, t, err)
	}
}

func (s *Server) vmDisk(attach bool) handler {
	return func(r *http.Request) (int, any, error) {
		if s.Compute == nil {
			return 0, nil, unavailable("VMs")
		}
		var op api.VMDiskOperation
		if err := decode(r, &op); err != nil {
			return 0, nil, err
		}
		var t *api.Task
		var err error
		if attach {
			t, err = s.Compute.AttachDisk(r.Context(), r.PathValue("id"), op.DiskID)
		} else {
			t, err = s.Compute.DetachDisk(r.Context(), r.PathValue("id"), op.DiskID)
		}
		return taskAnswer(r, t, err)
	}
}

func (s *Server) vmMetadata(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	var md api.VMMetadata
	if err := decode(r, &md); err != nil {
		return 0, nil, err
	}
	t, err := s.Compute.SetMetadata(r.Context(), r.PathValue("id"), md.Metadata)
	return taskAnswer(r, t, err)
}

func (s *Server) vmTag(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	var tag api.Tag
	if err := decode(r, &tag); err != nil {
		return 0, nil, err
	}
	t, err := s.Compute.AddTag(r.Context(), r.PathValue("id"), tag.Value)
	return taskAnswer(r, t, err)
}

// objectTasks lists the tasks of the VM or disk in the path (its
// existence was checked by authorization).
func (s *Server) objectTasks(r *http.Request) (int, any, error) {
	return s.tasksPage(r, tasks.Filter{EntityID: r.PathValue("id"), State: r.URL.Query().Get("state")})
}

// Disks.

func (s *Server) listDisks(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("disks")
	}
	if _, err := s.Tenancy.GetProject(r.Context(), r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Compute.ListDisks(r.Context(), r.PathValue("id"), r.URL.Query().Get("name"), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).disk), nil
}

func (s *Server) createDisk(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("disks")
	}
	var spec api.DiskCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Compute.CreateDisk(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) getDisk(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("disks")
	}
	d, err := s.Compute.GetDisk(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).disk(d)
	return http.StatusOK, d, nil
}

func (s *Server) deleteDisk(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("disks")
	}
	t, err := s.Compute.DeleteDisk(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}
