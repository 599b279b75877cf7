package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// What commands on one object share: how an ID|NAME argument is found,
// connecting, waiting for the task a change returns, and printing the
// outcome or the object.

// findFunc finds the object an ID|NAME argument names ("" for the current
// one, for kinds that have one).
type findFunc[T any] func(ctx context.Context, c *client.Client, arg string) (*T, error)

// object is how commands name one kind of object.
type object[T any] struct {
	kind string // "VM", "host": in sentences such as "Deleted VM web-1"
	// flags adds to a command the flags finding an object needs (-p/-t for
	// objects in a project) and returns the finder.
	flags func(cmd *cobra.Command) findFunc[T]
	// id and name read an object's id and the name sentences give it.
	id, name func(*T) string
}

// resolver is o's flags for commands that need only the id (tasks, quota, iam).
func (o object[T]) resolver(cmd *cobra.Command) idResolver {
	find := o.flags(cmd)
	return func(ctx context.Context, c *client.Client, arg string) (string, error) {
		obj, err := find(ctx, c, arg)
		if err != nil {
			return "", err
		}
		return o.id(obj), nil
	}
}

// inProject is the flags of objects found in a project: -p/--project and
// --tenant (-t when tenantShort), passed to find.
func inProject[T any](a *app, tenantShort bool,
	find func(ctx context.Context, c *client.Client, s *projectScope, arg string) (*T, error)) func(*cobra.Command) findFunc[T] {
	return func(cmd *cobra.Command) findFunc[T] {
		s := a.projectFlags(cmd, tenantShort)
		return func(ctx context.Context, c *client.Client, arg string) (*T, error) { return find(ctx, c, s, arg) }
	}
}

// noFlags is the flags of objects found by their argument alone.
func noFlags[T any](find findFunc[T]) func(*cobra.Command) findFunc[T] {
	return func(*cobra.Command) findFunc[T] { return find }
}

// getter turns an SDK read, e.g. (*client.Client).GetVM, into what done and
// created call for the object's JSON.
func getter[T any](get func(c *client.Client, ctx context.Context, id string) (*T, error)) func(*client.Client) func(context.Context, string) (any, error) {
	return func(c *client.Client) func(context.Context, string) (any, error) {
		return func(ctx context.Context, id string) (any, error) { return get(c, ctx, id) }
	}
}

// connected is action for commands that connect to the target before
// anything else: fn gets the command's context and the client.
func (a *app) connected(fn func(ctx context.Context, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return a.action(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		return fn(cmd.Context(), c, args)
	})
}

// objectCmd finishes cmd, a change to the one object its argument names:
// check validates the flags (nil: nothing to check), then it connects,
// finds the object, starts call on it, waits for the task and prints the
// outcome with report.
func objectCmd[T any](a *app, cmd *cobra.Command, o object[T], check func(cmd *cobra.Command) error,
	call func(ctx context.Context, c *client.Client, obj *T) (*api.Task, error),
	report func(ctx context.Context, c *client.Client, obj *T, t *api.Task) error) *cobra.Command {
	find := o.flags(cmd)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		if check != nil {
			if err := check(cmd); err != nil {
				return err
			}
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		obj, err := find(ctx, c, args[0])
		if err != nil {
			return err
		}
		t, err := call(ctx, c, obj)
		if t, err = a.wait(ctx, c, t, err); err != nil {
			return err
		}
		return report(ctx, c, obj, t)
	})
	return cmd
}

// deleteCmd finishes cmd, `<kind> delete ID|NAME`: it deletes the object
// with del and prints the outcome; after (nil: nothing) runs once the object
// is gone.
func deleteCmd[T any](a *app, cmd *cobra.Command, o object[T],
	del func(c *client.Client, ctx context.Context, id string) (*api.Task, error), after func(obj *T) error) *cobra.Command {
	return objectCmd(a, cmd, o, nil,
		func(ctx context.Context, c *client.Client, obj *T) (*api.Task, error) { return del(c, ctx, o.id(obj)) },
		func(_ context.Context, _ *client.Client, obj *T, t *api.Task) error {
			if after != nil {
				if err := after(obj); err != nil {
					return err
				}
			}
			return a.deleted(o.kind, o.name(obj), o.id(obj), t)
		})
}

// changeCmd is objectCmd for changes after which the object is printed
// (-o json), or else sentence(obj).
func changeCmd[T any](a *app, cmd *cobra.Command, o object[T], check func(cmd *cobra.Command) error,
	call func(ctx context.Context, c *client.Client, obj *T) (*api.Task, error),
	sentence func(obj *T) string, get func(c *client.Client) func(context.Context, string) (any, error)) *cobra.Command {
	return objectCmd(a, cmd, o, check, call, func(ctx context.Context, c *client.Client, obj *T, _ *api.Task) error {
		return a.done(ctx, sentence(obj), o.id(obj), get(c))
	})
}

// opCmd is `<kind> <verb> ID|NAME`, an operation without parameters, whose
// sentence past begins, e.g. "Started VM web-1".
func opCmd[T any](a *app, o object[T], verb, short, example, past string,
	call func(c *client.Client, ctx context.Context, id string) (*api.Task, error),
	get func(c *client.Client) func(context.Context, string) (any, error)) *cobra.Command {
	cmd := &cobra.Command{Use: verb + " ID|NAME", Short: short, Example: example, Args: exactArgs(1, "ID|NAME")}
	return changeCmd(a, cmd, o, nil,
		func(ctx context.Context, c *client.Client, obj *T) (*api.Task, error) { return call(c, ctx, o.id(obj)) },
		func(obj *T) string { return past + " " + o.kind + " " + o.name(obj) }, get)
}

// findCmd finishes cmd, a command on the object its argument names ("" or
// none for the current one, where a kind has one): it finds the object and
// runs fn on it.
func findCmd[T any](a *app, cmd *cobra.Command, o object[T], fn func(ctx context.Context, c *client.Client, obj *T) error) *cobra.Command {
	find := o.flags(cmd)
	cmd.RunE = a.connected(func(ctx context.Context, c *client.Client, args []string) error {
		obj, err := find(ctx, c, optArg(args))
		if err != nil {
			return err
		}
		return fn(ctx, c, obj)
	})
	return cmd
}

// showCmd is findCmd for `<kind> show [ID|NAME]`: print prints the object.
func showCmd[T any](a *app, cmd *cobra.Command, o object[T], print func(*T) error) *cobra.Command {
	return findCmd(a, cmd, o, func(_ context.Context, _ *client.Client, obj *T) error { return print(obj) })
}

// listInProject finishes cmd, `<kind> list [-p PROJECT] [--name NAME]`: it
// lists the objects of the project -p/-t name (or the current one), those
// named --name if given, and prints them with print.
func listInProject[T any](a *app, cmd *cobra.Command, nameHelp string,
	list func(c *client.Client, ctx context.Context, pid, name string) ([]T, error), print func([]T) error) *cobra.Command {
	var name string
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.connected(func(ctx context.Context, c *client.Client, args []string) error {
		pid, err := s.id(ctx, c)
		if err != nil {
			return err
		}
		items, err := list(c, ctx, pid, name)
		if err != nil {
			return err
		}
		return print(items)
	})
	cmd.Flags().StringVar(&name, "name", "", nameHelp)
	return cmd
}

// outcome prints what a change did to an object: json's value (-o json),
// the object's id alone (-n) or the sentence followed by the id.
func (a *app) outcome(sentence, id string, json func() (any, error)) error {
	switch {
	case a.jsonOut():
		v, err := json()
		if err != nil {
			return err
		}
		return a.printJSON(v)
	case a.plain():
		a.line("%s", id)
	default:
		a.line("%s, ID: %s", sentence, id)
	}
	return nil
}

// done prints the outcome of an operation on an object: the object as it is
// now (-o json), its id (-n) or the sentence.
func (a *app) done(ctx context.Context, sentence, id string, get func(context.Context, string) (any, error)) error {
	return a.outcome(sentence, id, func() (any, error) { return get(ctx, id) })
}

// created prints the outcome of a create task: the new object's JSON (-o
// json), its id alone (-n) or a sentence.
func (a *app) created(ctx context.Context, kind, name string, t *api.Task, get func(context.Context, string) (any, error)) error {
	return a.done(ctx, "Created "+kind+" "+name, t.Entity.ID, get)
}

// create waits for the task a create call returned (passing on the call's
// error err) and prints the outcome as created does.
func (a *app) create(ctx context.Context, c *client.Client, kind, name string, t *api.Task, err error,
	get func(c *client.Client) func(context.Context, string) (any, error)) error {
	if t, err = a.wait(ctx, c, t, err); err != nil {
		return err
	}
	return a.created(ctx, kind, name, t, get(c))
}

// deleted prints the outcome of a delete task: the task's JSON (-o json),
// the id (-n) or a sentence.
func (a *app) deleted(kind, name, id string, t *api.Task) error {
	return a.outcome("Deleted "+kind+" "+name, id, func() (any, error) { return t, nil })
}

// say prints a sentence for a person: not with -n or -o json.
func (a *app) say(format string, args ...any) {
	if !a.plain() && !a.jsonOut() {
		a.line(format, args...)
	}
}

// show prints one object: its JSON (-o json), row as one tab-separated line
// (-n), or for a person kv as aligned name/value fields, followed by what
// more prints (nil: nothing).
func (a *app) show(obj any, row, kv []string, more func() error) error {
	if a.jsonOut() {
		return a.printJSON(obj)
	}
	if a.plain() {
		return a.table(nil, [][]string{row})
	}
	if err := a.fields(kv...); err != nil || more == nil {
		return err
	}
	return more()
}

// printList prints items: their JSON (-o json), else a table of their rows
// under header.
func printList[T any](a *app, items []T, header []string, row func(T) []string) error {
	if a.jsonOut() {
		return a.printJSON(items)
	}
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		rows = append(rows, row(it))
	}
	return a.table(header, rows)
}
