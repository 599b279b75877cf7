// Package tenancy owns tenants, projects, flavors and quota accounting.
//
// A project's quota is carved out of its tenant's: the tenant's usage of a
// key it limits is the sum of its projects' limits of that key, changed in
// the same revision-checked transaction that creates, deletes or re-limits a
// project, so usage can never drift from the projects. A flavor counts its
// users; deleting one in use makes it PENDING_DELETE until the last user
// releases it.
//
// Keys (under store.Prefix):
//
//	tenants/<id>, projects/<id>, flavors/<id>   the objects
//	tenant-projects/<tenant>/<project>          listing index
//	names/tenants/<name>                        name -> id (NameTaken)
//	names/projects/<tenant>/<name>
//	names/flavors/<kind>/<name>
package tenancy
