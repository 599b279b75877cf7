// Package tasks owns persisted tasks: every state-changing API call becomes a
// task record in etcd with ordered steps. A step's effects and the task's
// progress commit in one revision-checked transaction, so a controller that
// dies between two steps resumes at the next step after restart, from any
// controller that shares the etcd, and a step never runs twice to completion.
//
// Keys (under store.Prefix):
//
//	tasks/<id>                      the task (api.Task)
//	taskqueue/<id>                  present while a task on no entity is unfinished
//	tasks-by-entity/<entity>/<id>   index for GET /v1/tasks?entityId=
//	locks/<entity>                  the unfinished task holding the entity
//
// An unfinished task is found again (the engine's scan) by its entity's
// lock, or, on no entity, by its queue entry.
//
// Tests inject crashes with PHOTON_FAILPOINTS="OPERATION/STEP=crash,...":
// the process kills itself (SIGKILL) just before running that step.
package tasks
