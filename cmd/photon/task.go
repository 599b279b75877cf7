package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// taskError is a task that ended ERROR: the task's own error and which task it was.
type taskError struct {
	task *api.Task
	err  error
}

func (e *taskError) Error() string {
	return fmt.Sprintf("%v (task %s %s)", e.err, e.task.ID, e.task.Operation)
}
func (e *taskError) Unwrap() error { return e.err }

// wait waits for the task a state-changing call returned (passing the call's
// error through), printing step progress on a terminal. A task that ends
// ERROR is returned with a *taskError.
func (a *app) wait(ctx context.Context, c *client.Client, task *api.Task, err error) (*api.Task, error) {
	if err != nil {
		return task, err
	}
	var progress func(*api.Task)
	if f, ok := a.stderr.(*os.File); ok && !a.nonInteractive && !a.jsonOut() && isTerminal(f) {
		progress = a.progressPrinter()
	}
	t, err := c.WatchTask(ctx, task, progress)
	if err != nil && ctx.Err() != nil && t != nil {
		return t, fmt.Errorf("interrupted; task %s (%s) goes on: follow it with 'photon task wait %s'", t.ID, t.Operation, t.ID)
	}
	if err != nil {
		if t != nil && t.State == api.TaskError {
			return t, &taskError{task: t, err: err}
		}
		return t, err
	}
	return t, nil
}

// progressPrinter returns a WatchTask callback that prints each step of a
// task that was still running when first seen, as its state changes.
func (a *app) progressPrinter() func(*api.Task) {
	first, quiet := true, false
	seen := map[int]string{}
	return func(t *api.Task) {
		if first {
			first, quiet = false, t.Done()
		}
		if quiet {
			return
		}
		for _, s := range t.Steps {
			if seen[s.Sequence] == s.State {
				continue
			}
			seen[s.Sequence] = s.State
			fmt.Fprintf(a.stderr, "  %s: %s\n", s.Operation, s.State)
		}
		if t.Done() {
			fmt.Fprintf(a.stderr, "%s %s\n", t.Operation, t.State)
		}
	}
}

func (a *app) taskCmd() *cobra.Command {
	return a.group("task", "Show, list and wait for tasks",
		"  photon task list --state ERROR\n  photon task show TASK_ID",
		a.taskShowCmd(), a.taskListCmd(), a.taskWaitCmd())
}

func (a *app) taskShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show TASK_ID",
		Short:   "Show a task with its steps",
		Example: "  photon task show 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e",
		Args:    exactArgs(1, "TASK_ID"),
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			t, err := c.GetTask(ctx, args[0])
			if err != nil {
				return err
			}
			return a.printTask(t)
		}),
	}
}

func (a *app) taskWaitCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "wait TASK_ID",
		Aliases: []string{"monitor"},
		Short:   "Wait for a task to end; exit non-zero if it fails",
		Example: "  photon task wait 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e",
		Args:    exactArgs(1, "TASK_ID"),
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			t, err := c.GetTask(ctx, args[0])
			if err != nil {
				return err
			}
			t, werr := a.wait(ctx, c, t, nil)
			if t != nil && t.Done() {
				if err := a.printTask(t); err != nil {
					return err
				}
			}
			return werr
		}),
	}
}

func (a *app) taskListCmd() *cobra.Command {
	var f client.TaskFilter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks, optionally of one entity or in one state",
		Example: `  photon task list
  photon task list --entityKind tenant --entityId 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e
  photon task list --state ERROR`,
		Args: cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			f.State = strings.ToUpper(f.State)
			tasks, err := c.ListTasks(ctx, f)
			if err != nil {
				return err
			}
			return a.printTasks(tasks)
		}),
	}
	cmd.Flags().StringVarP(&f.EntityID, "entityId", "e", "", "only tasks of the entity with this id")
	cmd.Flags().StringVarP(&f.EntityKind, "entityKind", "k", "", "only tasks of entities of this kind, e.g. tenant")
	cmd.Flags().StringVarP(&f.State, "state", "s", "", "only tasks in this state: QUEUED, STARTED, COMPLETED or ERROR")
	return cmd
}

// idResolver turns an ID|NAME argument ("" for the current one) into an id.
type idResolver func(ctx context.Context, c *client.Client, arg string) (string, error)

// entityTasksCmd is `<kind> tasks [ID|NAME] [--state S]`, listing one
// entity's tasks. flags adds the command's own flags and returns its
// resolver; list is an SDK method expression, e.g. (*client.Client).ListTenantTasks.
func (a *app) entityTasksCmd(kind, example string, flags func(*cobra.Command) idResolver,
	list func(c *client.Client, ctx context.Context, id, state string) ([]api.Task, error)) *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:     "tasks [ID|NAME]",
		Short:   "List the tasks of a " + kind,
		Example: example,
		Args:    cobra.MaximumNArgs(1),
	}
	resolve := flags(cmd)
	cmd.RunE = a.connected(func(ctx context.Context, c *client.Client, args []string) error {
		id, err := resolve(ctx, c, optArg(args))
		if err != nil {
			return err
		}
		tasks, err := list(c, ctx, id, strings.ToUpper(state))
		if err != nil {
			return err
		}
		return a.printTasks(tasks)
	})
	cmd.Flags().StringVarP(&state, "state", "s", "", "only tasks in this state: QUEUED, STARTED, COMPLETED or ERROR")
	return cmd
}

var taskHeader = []string{"ID", "OPERATION", "STATE", "ENTITY", "QUEUED", "DURATION"}

func taskRow(t api.Task, plain bool) []string {
	if plain {
		return []string{t.ID, t.Operation, t.State, t.Entity.Kind, t.Entity.ID,
			strconv.FormatInt(t.QueuedTime, 10), strconv.FormatInt(t.EndTime, 10)}
	}
	return []string{t.ID, t.Operation, t.State, t.Entity.Kind + " " + t.Entity.ID,
		msTime(t.QueuedTime), duration(t.StartedTime, t.EndTime)}
}

// printTasks prints a task list; plain rows are
// ID OPERATION STATE ENTITY_KIND ENTITY_ID QUEUED_MS END_MS.
func (a *app) printTasks(tasks []api.Task) error {
	return printList(a, tasks, taskHeader, func(t api.Task) []string { return taskRow(t, a.plain()) })
}

// printTask prints one task with its steps and errors.
func (a *app) printTask(t *api.Task) error {
	return a.show(t, taskRow(*t, true), []string{"ID", t.ID, "Operation", t.Operation, "State", t.State,
		"Entity", t.Entity.Kind + " " + t.Entity.ID, "Queued", msTime(t.QueuedTime),
		"Started", msTime(t.StartedTime), "Ended", msTime(t.EndTime),
		"Duration", duration(t.StartedTime, t.EndTime)}, func() error {
		if len(t.Steps) == 0 {
			return nil
		}
		a.line("")
		rows := make([][]string, 0, len(t.Steps))
		for _, s := range t.Steps {
			var errs []string
			for _, e := range s.Errors {
				errs = append(errs, e.Error())
			}
			rows = append(rows, []string{strconv.Itoa(s.Sequence), s.Operation, s.State,
				duration(s.StartedTime, s.EndTime), orDash(strings.Join(errs, "; "))})
		}
		return a.table([]string{"STEP", "OPERATION", "STATE", "DURATION", "ERRORS"}, rows)
	})
}

// exactArgs is cobra.ExactArgs with a message naming what is missing.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s, got %d argument(s)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}
