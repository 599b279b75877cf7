package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// Operations of users and role bindings. Each finishes in the transaction
// that submits it.
const (
	OpCreateUser   = "CREATE_USER"
	OpUpdateUser   = "UPDATE_USER"
	OpDeleteUser   = "DELETE_USER"
	OpSetIAMPolicy = "SET_IAM_POLICY"
)

// BcryptCost is the bcrypt cost of stored passwords.
var BcryptCost = bcrypt.DefaultCost

// Service manages users and role bindings and computes what a principal
// may reach.
type Service struct {
	st     *store.Store
	tasks  *tasks.Engine
	tokens *Tokens
}

// NewService returns the service and registers its operations.
func NewService(st *store.Store, engine *tasks.Engine, tokens *Tokens) (*Service, error) {
	s := &Service{st: st, tasks: engine, tokens: tokens}
	var ops []*tasks.Operation
	for _, name := range []string{OpCreateUser, OpUpdateUser, OpDeleteUser, OpSetIAMPolicy} {
		ops = append(ops, &tasks.Operation{Name: name, Steps: []tasks.Step{{Name: name,
			Run: func(context.Context, *store.Txn, *api.Task) error { return nil }}}})
	}
	if err := engine.Register(ops...); err != nil {
		return nil, err
	}
	return s, nil
}

// submit runs fn and a task for op, done at once, in one transaction.
func (s *Service) submit(ctx context.Context, op string, entity api.Entity, tenantID, projectID string, fn func(tx *store.Txn) error) (*api.Task, error) {
	var task *api.Task
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		var err error
		if task, err = s.tasks.NewTask(op, entity, tenantID, projectID); err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		s.tasks.CompleteStep(task, 0)
		return s.tasks.Submit(ctx, tx, task)
	})
	if err != nil {
		return nil, err
	}
	return task, nil
}

func validatePassword(field, p string) error {
	if len(p) < 8 || len(p) > 72 {
		return api.FieldError(field, "must be 8 to 72 bytes, got %d", len(p))
	}
	return nil
}

func validateGroups(groups []string) error {
	for i, g := range groups {
		if err := api.ValidateName("groups["+strconv.Itoa(i)+"]", g); err != nil {
			return err
		}
	}
	return nil
}

// ValidateUserSpec checks a user create spec.
func ValidateUserSpec(spec *api.UserCreateSpec) error {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return err
	}
	if err := validatePassword("password", spec.Password); err != nil {
		return err
	}
	return validateGroups(spec.Groups)
}

// ValidateUserUpdate checks a user update spec.
func ValidateUserUpdate(spec *api.UserUpdateSpec) error {
	if spec.Password != nil {
		if err := validatePassword("password", *spec.Password); err != nil {
			return err
		}
	}
	if spec.Groups != nil {
		return validateGroups(*spec.Groups)
	}
	return nil
}

func sortedGroups(g []string) []string {
	out := slices.Clone(g)
	slices.Sort(out)
	return slices.Compact(append([]string{}, out...))
}

// CreateUser creates a local user.
func (s *Service) CreateUser(ctx context.Context, spec *api.UserCreateSpec) (*api.Task, error) {
	if err := ValidateUserSpec(spec); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(spec.Password), BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	u := userRecord{User: api.User{Base: api.Base{ID: spec.Name, Kind: api.KindUser}, Name: spec.Name,
		Groups: sortedGroups(spec.Groups), CreatedTime: s.tokens.now().UnixMilli()}, PasswordHash: hash}
	return s.submit(ctx, OpCreateUser, api.Entity{ID: spec.Name, Kind: api.KindUser}, "", "", func(tx *store.Txn) error {
		if taken, err := tx.Exists(ctx, userKey(spec.Name)); err != nil {
			return err
		} else if taken {
			e := api.Errorf(api.CodeNameTaken, "user name %q is taken", spec.Name)
			e.Data = map[string]string{"field": "name"}
			return e
		}
		return tx.Put(userKey(spec.Name), &u)
	})
}

func errNoUser(name string) error { return api.Errorf(api.CodeUserNotFound, "user %s not found", name) }

// GetUser reads a user.
func (s *Service) GetUser(ctx context.Context, name string) (*api.User, error) {
	if !validID(name) {
		return nil, errNoUser(name)
	}
	var u userRecord
	if _, err := s.st.Get(ctx, userKey(name), &u); errors.Is(err, store.ErrNotFound) {
		return nil, errNoUser(name)
	} else if err != nil {
		return nil, err
	}
	return &u.User, nil
}

// ListUsers lists one page of users in name order.
func (s *Service) ListUsers(ctx context.Context, token string, size int) ([]api.User, string, error) {
	l, next, err := store.PageOf[userRecord](ctx, s.st, store.Prefix("users"), token, size, nil)
	if err != nil {
		return nil, "", err
	}
	out := make([]api.User, len(l))
	for i := range l {
		out[i] = l[i].User
	}
	return out, next, nil
}

// UpdateUser changes a user's password (ending its sessions) or groups.
func (s *Service) UpdateUser(ctx context.Context, name string, spec *api.UserUpdateSpec) (*api.Task, error) {
	if err := ValidateUserUpdate(spec); err != nil {
		return nil, err
	}
	if _, err := s.GetUser(ctx, name); err != nil {
		return nil, err
	}
	var hash []byte
	if spec.Password != nil {
		var err error
		if hash, err = bcrypt.GenerateFromPassword([]byte(*spec.Password), BcryptCost); err != nil {
			return nil, err
		}
	}
	sessions, err := s.sessionsOf(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpUpdateUser, api.Entity{ID: name, Kind: api.KindUser}, "", "", func(tx *store.Txn) error {
		var u userRecord
		if err := tx.MustGet(ctx, userKey(name), &u); errors.Is(err, store.ErrNotFound) {
			return errNoUser(name)
		} else if err != nil {
			return err
		}
		if spec.Groups != nil {
			u.Groups = sortedGroups(*spec.Groups)
		}
		if hash != nil {
			u.PasswordHash = hash
			for _, k := range sessions {
				tx.Delete(k)
			}
		}
		return tx.Put(userKey(name), &u)
	})
}

// sessionsOf returns the keys of a user's sessions and their index entries.
func (s *Service) sessionsOf(ctx context.Context, name string) ([]string, error) {
	resp, err := s.st.Client().Get(ctx, userSessionPrefix(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("sessions of %s: %w", name, err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		keys = append(keys, k, sessionKey(k[len(userSessionPrefix(name)):]))
	}
	return keys, nil
}

// DeleteUser deletes a user, its sessions and its role bindings. Its tokens
// stop working at once.
func (s *Service) DeleteUser(ctx context.Context, name string) (*api.Task, error) {
	if _, err := s.GetUser(ctx, name); err != nil {
		return nil, err
	}
	sessions, err := s.sessionsOf(ctx, name)
	if err != nil {
		return nil, err
	}
	scopes, err := s.scopesOf(ctx, "user:"+name)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpDeleteUser, api.Entity{ID: name, Kind: api.KindUser}, "", "", func(tx *store.Txn) error {
		if err := tx.MustGet(ctx, userKey(name), new(userRecord)); errors.Is(err, store.ErrNotFound) {
			return errNoUser(name)
		} else if err != nil {
			return err
		}
		tx.Delete(userKey(name))
		for _, k := range sessions {
			tx.Delete(k)
		}
		for _, sc := range scopes {
			if err := s.editPolicy(ctx, tx, sc, func(bs []api.RoleBinding) ([]api.RoleBinding, error) {
				return removeSubject(bs, "user:"+name), nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

func removeSubject(bs []api.RoleBinding, subject string) []api.RoleBinding {
	for i := range bs {
		bs[i].Subjects = slices.DeleteFunc(bs[i].Subjects, func(s string) bool { return s == subject })
	}
	return bs
}
