package httpapi

import (
	"net/http"

	"github.com/photon-cloud/photon/api"
)

// Virtual networks: a project's routers and their subnets (internal/network).

func (l linker) router(r *api.Router) { r.SelfLink = l.base + "/v1/routers/" + r.ID }
func (l linker) subnet(s *api.Subnet) { s.SelfLink = l.base + "/v1/subnets/" + s.ID }

func (s *Server) networkRoutes(r func(method, path string, perm Perm, h handler) Route) []Route {
	return []Route{
		r("GET", "/v1/projects/{id}/routers", PermProjectRead, s.listRouters),
		r("POST", "/v1/projects/{id}/routers", PermProjectWrite, s.createRouter),
		r("GET", "/v1/routers/{id}", PermObjectRead, s.getRouter),
		r("PATCH", "/v1/routers/{id}", PermObjectWrite, s.updateRouter),
		r("DELETE", "/v1/routers/{id}", PermObjectWrite, s.deleteRouter),
		r("GET", "/v1/routers/{id}/subnets", PermObjectRead, s.listSubnets),
		r("POST", "/v1/routers/{id}/subnets", PermObjectWrite, s.createSubnet),
		r("GET", "/v1/subnets/{id}", PermObjectRead, s.getSubnet),
		r("PATCH", "/v1/subnets/{id}", PermObjectWrite, s.updateSubnet),
		r("DELETE", "/v1/subnets/{id}", PermObjectWrite, s.deleteSubnet),
		r("POST", "/v1/subnets/{id}/set_default", PermObjectWrite, s.setDefaultSubnet),
		r("GET", "/v1/vms/{id}/subnets", PermObjectRead, s.vmSubnets),
		r("POST", "/v1/vms/{id}/acquire_floating_ip", PermObjectWrite, s.acquireFloatingIP).with(BodyID{"networkId", "subnets"}),
		r("DELETE", "/v1/vms/{id}/release_floating_ip", PermObjectWrite, s.releaseFloatingIP),
	}
}

func (s *Server) listRouters(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Network.ListRouters(r.Context(), r.PathValue("id"), r.URL.Query().Get("name"), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).router), nil
}

func (s *Server) createRouter(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	var spec api.RouterCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Network.CreateRouter(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) getRouter(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	rt, err := s.Network.GetRouter(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).router(rt)
	return http.StatusOK, rt, nil
}

func (s *Server) updateRouter(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	var spec api.RouterUpdateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Network.UpdateRouter(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) deleteRouter(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	t, err := s.Network.DeleteRouter(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

func (s *Server) listSubnets(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Network.ListSubnets(r.Context(), r.PathValue("id"), r.URL.Query().Get("name"), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).subnet), nil
}

func (s *Server) createSubnet(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	var spec api.SubnetCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Network.CreateSubnet(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) getSubnet(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	sn, err := s.Network.GetSubnet(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).subnet(sn)
	return http.StatusOK, sn, nil
}

func (s *Server) updateSubnet(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	var spec api.SubnetUpdateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Network.UpdateSubnet(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) deleteSubnet(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	t, err := s.Network.DeleteSubnet(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

func (s *Server) setDefaultSubnet(r *http.Request) (int, any, error) {
	if s.Network == nil {
		return 0, nil, unavailable("networks")
	}
	t, err := s.Network.SetDefault(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

// vmSubnets answers GET /v1/vms/{id}/subnets: a GET_NETWORKS task, done,
// listing the VM's NICs.
func (s *Server) vmSubnets(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	t, err := s.Compute.GetNetworks(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).task(t)
	return http.StatusOK, t, nil
}

func (s *Server) acquireFloatingIP(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	var spec api.FloatingIPSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Compute.AcquireFloatingIP(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) releaseFloatingIP(r *http.Request) (int, any, error) {
	if s.Compute == nil {
		return 0, nil, unavailable("VMs")
	}
	t, err := s.Compute.ReleaseFloatingIP(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}
