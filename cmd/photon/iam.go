package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// Users, role bindings and the audit log.

func (a *app) userCmd() *cobra.Command {
	return a.group("user", "Manage local users (system administrators only)",
		"  photon user create alice --password 's3cret-pass' --group devs\n  photon user list",
		a.userCreateCmd(), a.userListCmd(), a.userShowCmd(), a.userDeleteCmd(), a.userSetPasswordCmd(), a.userSetGroupsCmd())
}

// readSecret returns s, or standard input's first line if s is "-".
func readSecret(s string) (string, error) {
	if s != "-" {
		return s, nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 4096))
	if err != nil {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

func (a *app) userCreateCmd() *cobra.Command {
	var password string
	var groups []string
	cmd := &cobra.Command{
		Use:   "create NAME --password P [--group G]...",
		Short: "Create a user who logs in with 'photon target login -u NAME -p P'",
		Long: `Create a local user. The password is 8 to 72 bytes; "-" reads it from
standard input. Groups may be named in role bindings as group:NAME.`,
		Example: "  photon user create alice --password 's3cret-pass'\n  photon user create bob --password - --group devs < pw.txt",
		Args:    exactArgs(1, "NAME"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			pw, err := readSecret(password)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := c.CreateUser(ctx, &api.UserCreateSpec{Name: args[0], Password: pw, Groups: groups})
			return a.create(ctx, c, "user", args[0], t, err, getter((*client.Client).GetUser))
		}),
	}
	cmd.Flags().StringVar(&password, "password", "", `the password ("-": read from standard input)`)
	cmd.Flags().StringSliceVarP(&groups, "group", "g", nil, "a group the user belongs to (repeatable)")
	_ = cmd.MarkFlagRequired("password")
	return cmd
}

func (a *app) userListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List users",
		Example: "  photon user list\n  photon -n user list",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			users, err := c.ListUsers(ctx)
			if err != nil {
				return err
			}
			return printList(a, users, []string{"NAME", "GROUPS", "CREATED"}, func(u api.User) []string {
				return []string{u.Name, orDash(strings.Join(u.Groups, ",")), msTime(u.CreatedTime)}
			})
		}),
	}
}

func (a *app) userShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a user",
		Example: "  photon user show alice",
		Args:    exactArgs(1, "NAME"),
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			u, err := c.GetUser(ctx, args[0])
			if err != nil {
				return err
			}
			return a.show(u, []string{u.Name, strings.Join(u.Groups, ","), strconv.FormatInt(u.CreatedTime, 10)},
				[]string{"Name", u.Name, "Groups", orDash(strings.Join(u.Groups, ", ")), "Created", msTime(u.CreatedTime)}, nil)
		}),
	}
}

func (a *app) userDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a user: its tokens stop working and its role bindings go",
		Example: "  photon user delete alice",
		Args:    exactArgs(1, "NAME"),
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			t, err := c.DeleteUser(ctx, args[0])
			if t, err = a.wait(ctx, c, t, err); err != nil {
				return err
			}
			return a.deleted("user", args[0], args[0], t)
		}),
	}
}

func (a *app) userSetPasswordCmd() *cobra.Command {
	var password string
	cmd := &cobra.Command{
		Use:     "set-password NAME --password P",
		Short:   "Change a user's password; the user's sessions end",
		Example: "  photon user set-password alice --password 'n3w-secret'",
		Args:    exactArgs(1, "NAME"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			pw, err := readSecret(password)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := c.UpdateUser(ctx, args[0], &api.UserUpdateSpec{Password: &pw})
			if _, err = a.wait(ctx, c, t, err); err != nil {
				return err
			}
			a.say("Password of %s changed", args[0])
			return nil
		}),
	}
	cmd.Flags().StringVar(&password, "password", "", `the new password ("-": read from standard input)`)
	_ = cmd.MarkFlagRequired("password")
	return cmd
}

func (a *app) userSetGroupsCmd() *cobra.Command {
	var groups []string
	cmd := &cobra.Command{
		Use:     "set-groups NAME [--group G]...",
		Short:   "Replace a user's groups (none given: no groups)",
		Example: "  photon user set-groups alice -g devs -g ops\n  photon user set-groups alice",
		Args:    exactArgs(1, "NAME"),
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			if groups == nil {
				groups = []string{}
			}
			t, err := c.UpdateUser(ctx, args[0], &api.UserUpdateSpec{Groups: &groups})
			if _, err = a.wait(ctx, c, t, err); err != nil {
				return err
			}
			a.say("Groups of %s: %s", args[0], orDash(strings.Join(groups, ", ")))
			return nil
		}),
	}
	cmd.Flags().StringSliceVarP(&groups, "group", "g", nil, "a group (repeatable)")
	return cmd
}

func (a *app) iamCmd(o owner) *cobra.Command {
	role := strings.Split(o.roles, ",")[0]
	sub := func(action string) *cobra.Command { return a.iamChangeCmd(o, action, role) }
	return a.group("iam", "Show or change who holds which role on the "+o.kind,
		fmt.Sprintf("  photon %s iam show %s\n  photon %s iam add %s -p user:alice -r %s", o.kind, o.example, o.kind, o.example, role),
		a.iamShowCmd(o), sub(api.ActionAdd), sub(api.ActionRemove))
}

// iamSubCmd finishes cmd, `<kind> iam <verb> [ID|NAME] rest`: it sets its
// use and arguments, adds o's flags and runs fn with the /iam path the
// arguments name.
func (a *app) iamSubCmd(o owner, cmd *cobra.Command, verb, rest string,
	fn func(ctx context.Context, c *client.Client, path string) error) *cobra.Command {
	path := func(context.Context, *client.Client, []string) (string, error) {
		return client.IAMPath("system", ""), nil
	}
	cmd.Use, cmd.Args = verb+rest, cobra.NoArgs
	if o.flags != nil {
		resolve := o.flags(cmd)
		cmd.Use, cmd.Args = verb+" [ID|NAME]"+rest, cobra.MaximumNArgs(1)
		path = func(ctx context.Context, c *client.Client, args []string) (string, error) {
			id, err := resolve(ctx, c, optArg(args))
			if err != nil {
				return "", err
			}
			return client.IAMPath(o.kind, id), nil
		}
	}
	cmd.RunE = a.connected(func(ctx context.Context, c *client.Client, args []string) error {
		p, err := path(ctx, c, args)
		if err != nil {
			return err
		}
		return fn(ctx, c, p)
	})
	return cmd
}

func (a *app) iamShowCmd(o owner) *cobra.Command {
	return a.iamSubCmd(o, &cobra.Command{
		Short:   "Show the role bindings of the " + o.kind,
		Example: fmt.Sprintf("  photon %s iam show %s", o.kind, o.example),
	}, "show", "", func(ctx context.Context, c *client.Client, path string) error {
		bs, err := c.GetIAM(ctx, path)
		if err != nil {
			return err
		}
		if a.jsonOut() {
			return a.printJSON(bs)
		}
		var rows [][]string
		for _, b := range bs {
			for _, s := range b.Subjects {
				rows = append(rows, []string{b.Role, s})
			}
		}
		return a.table([]string{"ROLE", "SUBJECT"}, rows)
	})
}

// iamChangeCmd is `iam add` or `iam remove`; role is the one examples grant.
func (a *app) iamChangeCmd(o owner, action, role string) *cobra.Command {
	var subject, bound string
	verb := strings.ToLower(action)
	cmd := a.iamSubCmd(o, &cobra.Command{
		Short:   fmt.Sprintf("%s a role on the %s %s a user or group", map[string]string{"add": "Grant", "remove": "Revoke"}[verb], o.kind, map[string]string{"add": "to", "remove": "from"}[verb]),
		Example: fmt.Sprintf("  photon %s iam %s %s -p user:alice -r %s\n  photon %s iam %s %s -p group:ops -r %s", o.kind, verb, o.example, role, o.kind, verb, o.example, role),
	}, verb, " -p SUBJECT -r ROLE", func(ctx context.Context, c *client.Client, path string) error {
		t, err := c.PatchIAM(ctx, path, api.RoleBindingDelta{Action: action, Role: bound, Subject: subject})
		if t, err = a.wait(ctx, c, t, err); err != nil {
			return err
		}
		switch {
		case a.jsonOut():
			return a.printJSON(t)
		case a.plain():
		default:
			if action == api.ActionAdd {
				a.line("Granted %s to %s", bound, subject)
			} else {
				a.line("Revoked %s from %s", bound, subject)
			}
		}
		return nil
	})
	cmd.Flags().StringVarP(&subject, "principal", "p", "", "user:NAME or group:NAME (a bare NAME is a user)")
	cmd.Flags().StringVarP(&bound, "role", "r", "", "the role: "+o.roles)
	_ = cmd.MarkFlagRequired("principal")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func (a *app) systemAuditCmd() *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "audit [--since WHEN]",
		Short: "Show the audit log of mutating requests (system administrators only)",
		Long: `Show the audit log: every mutating request with who made it, what it
was, the object, the result and the task. --since takes a duration back
from now (1h, 30m), an RFC 3339 time or milliseconds since the epoch.`,
		Example: "  photon system audit --since 1h\n  photon system audit -o json",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			l, err := c.ListAudit(ctx, since)
			if err != nil {
				return err
			}
			return printList(a, l, []string{"TIME", "WHO", "REQUEST", "OBJECT", "RESULT", "TASK"}, func(e api.AuditEntry) []string {
				result := strconv.Itoa(e.Status)
				if e.Code != "" {
					result += " " + e.Code
				}
				return []string{msTime(e.Time), e.Subject, e.Method + " " + e.Path, orDash(e.Object), result, orDash(e.TaskID)}
			})
		}),
	}
	cmd.Flags().StringVar(&since, "since", "", "only records since WHEN (e.g. 1h, 2026-01-02T15:04:05Z)")
	return cmd
}

// attachObjectIAM adds `iam show|add|remove ID` to the vm, disk and image
// command groups (grants on one object).
func (a *app) attachObjectIAM(root *cobra.Command) {
	byID := func(*cobra.Command) idResolver {
		return func(_ context.Context, _ *client.Client, arg string) (string, error) {
			if arg == "" {
				return "", usagef("give the ID")
			}
			return arg, nil
		}
	}
	for _, c := range root.Commands() {
		switch c.Name() {
		case "vm", "disk", "image":
			c.AddCommand(a.iamCmd(owner{kind: c.Name(), example: "ID", roles: "project-user, project-viewer", flags: byID}))
		}
	}
}
