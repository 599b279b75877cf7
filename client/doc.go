// Package client is Photon's Go SDK: typed calls for every /v1 resource,
// bearer-token auth over TLS (with a pinned CA or the system roots), list
// helpers that follow nextPageLink to the end, and task waiting.
//
// Every state-changing call returns the *api.Task the server answered with;
// WaitTask (or Wait) polls it until it ends and returns the task's error if it
// failed. Error bodies come back as *api.Error, so errors.Is works against the
// sentinels in package api:
//
//	c, err := client.New("https://photon.example:9000",
//		client.WithToken(token), client.WithCACertFile("ca.crt"))
//	task, err := c.Wait(ctx)(c.CreateTenant(ctx, &api.TenantCreateSpec{Name: "eng"}))
//	if errors.Is(err, api.ErrNameTaken) { ... }
package client
