package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// image finds an image by name or id. Names are looked up among the images a
// VM of the scope's project can use: the project's own of that name if it
// has one, else the infrastructure-wide ones (all of them with no project).
func (a *app) image(ctx context.Context, c *client.Client, s *projectScope, arg string) (*api.Image, error) {
	f := finder[api.Image]{what: "image", code: codeImageNotFound, where: "the images " + s.describe() + " sees", get: c.GetImage,
		name: imageName, id: imageID}
	if nameShaped(arg) {
		pid, err := s.known(ctx, c)
		if err != nil {
			return nil, err
		}
		if pid == "" {
			f.where = "the infrastructure"
		}
		f.list = func(ctx context.Context, name string) ([]api.Image, error) {
			return visibleImages(ctx, c, pid, name)
		}
	}
	return f.find(ctx, arg)
}

func imageID(im *api.Image) string   { return im.ID }
func imageName(im *api.Image) string { return im.Name }

// imageObject names an image: by name among those a VM of the project
// -p/-t name (or the current one) can use, or by id.
func (a *app) imageObject() object[api.Image] {
	return object[api.Image]{kind: "image", flags: inProject(a, true, a.image), id: imageID, name: imageName}
}

// visibleImages lists the images named name that a VM in project pid ("" for
// none) can use: the project's own if it has one of that name, else the
// infrastructure-wide ones.
func visibleImages(ctx context.Context, c *client.Client, pid, name string) ([]api.Image, error) {
	var out []api.Image
	if pid != "" {
		ims, err := c.ListProjectImages(ctx, pid)
		if err != nil {
			return nil, err
		}
		for _, im := range ims {
			if im.Name == name {
				out = append(out, im)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	ims, err := c.ListImages(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, im := range ims {
		if im.Name == name && im.Scope.Kind != "project" {
			out = append(out, im)
		}
	}
	return out, nil
}

var getImage = getter((*client.Client).GetImage)

func (a *app) imageCmd() *cobra.Command {
	return a.group("image", "Upload and manage VM disk images",
		"  photon image create ubuntu.qcow2 -n ubuntu -i ON_DEMAND\n  photon image list",
		a.imageCreateCmd(), a.imageListCmd(), a.imageShowCmd(), a.imageDeleteCmd(),
		a.entityTasksCmd("image", "  photon image tasks ubuntu\n  photon image tasks ubuntu --state ERROR", a.imageObject().resolver, (*client.Client).ListImageTasks),
	)
}

func (a *app) imageCreateCmd() *cobra.Command {
	var name, replication, project, tenant string
	cmd := &cobra.Command{
		Use:   "create FILE -n NAME [-i EAGER|ON_DEMAND] [-p PROJECT]",
		Short: "Upload an image file (raw or qcow2) and wait until it is ready",
		Long: `Upload an image file and wait until the controller has stored it. The file
is streamed, never held in memory; on a terminal a progress bar shows the
upload (none with -n, -o json or when the output is not a terminal).

Without -p the image is infrastructure-wide (system administrators); with
-p it belongs to that project. -i says how it reaches hosts: EAGER (copied
to every host after the upload, the default) or ON_DEMAND (copied to a host
when a VM there first needs it).

Here -n is the image's name; the global -n may be given before the command
word (photon -n image create ...) or as --non-interactive.`,
		Example: `  photon image create ubuntu.qcow2 -n ubuntu -i ON_DEMAND
  photon image create cirros.img -n cirros -i EAGER -p p1 -t t1
  photon -n image create ubuntu.qcow2 -n ubuntu   # prints only the id`,
		Args: exactArgs(1, "FILE"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			rt := strings.ToUpper(strings.ReplaceAll(replication, "-", "_"))
			switch rt {
			case "", api.ReplicationEager, api.ReplicationOnDemand:
			default:
				return usagef("-i %q: want EAGER or ON_DEMAND", replication)
			}
			path := args[0]
			file, err := os.Open(path)
			if err != nil {
				return err
			}
			defer file.Close()
			st, err := file.Stat()
			if err != nil {
				return err
			}
			if st.IsDir() {
				return usagef("%s is a directory, not an image file", path)
			}
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
				if !nameShaped(name) {
					return usagef("image create needs -n NAME (%q is not a valid name)", name)
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			up := client.ImageUpload{Name: name, ReplicationType: rt, FileName: filepath.Base(path)}
			if project != "" {
				p, err := a.project(ctx, c, tenant, project)
				if err != nil {
					return err
				}
				up.ProjectID = p.ID
			}
			var bar *progressBar
			if a.showProgress() {
				bar = newProgressBar(a.stderr, filepath.Base(path), st.Size())
				up.Progress = bar.update
			}
			t, err := c.UploadImage(ctx, file, st.Size(), up)
			if bar != nil {
				bar.finish()
			}
			return a.create(ctx, c, "image", name, t, err, getImage)
		}),
	}
	a.nameFlag(cmd, &name, "image name, e.g. ubuntu (default: the file's name without extension)")
	f := cmd.Flags()
	f.StringVarP(&replication, "image_replication", "i", "", "replication type: EAGER (default) or ON_DEMAND")
	f.StringVarP(&project, "project", "p", "", "upload into this project (name or id) instead of the infrastructure")
	f.StringVarP(&tenant, "tenant", "t", "", "tenant of the project -p names (default: the current tenant)")
	return cmd
}

// showProgress reports whether to draw progress bars: only for a person
// watching a terminal, not with -n or -o json.
func (a *app) showProgress() bool {
	if a.nonInteractive || a.jsonOut() {
		return false
	}
	out, ok1 := a.stdout.(*os.File)
	errf, ok2 := a.stderr.(*os.File)
	return ok1 && ok2 && isTerminal(out) && isTerminal(errf)
}

var imageHeader = []string{"ID", "NAME", "STATE", "SIZE", "REPLICATION", "SCOPE", "USERS"}

func imageRow(im api.Image) []string {
	scope := im.Scope.Kind
	if im.Scope.ID != "" {
		scope += ":" + im.Scope.ID
	}
	return []string{im.ID, im.Name, im.State, mib(im.Size), orDash(im.ReplicationType), orDash(scope), itoa(im.Users)}
}

func (a *app) imageListCmd() *cobra.Command {
	var name, project, tenant string
	cmd := &cobra.Command{
		Use:   "list [-p PROJECT] [--name NAME]",
		Short: "List images: every one you may see, or a project's own (-p)",
		Long: `List images. With -n each line is ID NAME STATE SIZE REPLICATION SCOPE USERS,
tab-separated, SIZE in MB, SCOPE as "infrastructure" or "project:ID".`,
		Example: "  photon image list\n  photon image list -p p1 -t t1\n  photon -n image list --name ubuntu",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			var ims []api.Image
			var err error
			if project != "" {
				p, err := a.project(ctx, c, tenant, project)
				if err != nil {
					return err
				}
				all, err := c.ListProjectImages(ctx, p.ID)
				if err != nil {
					return err
				}
				ims = []api.Image{}
				for _, im := range all {
					if name == "" || im.Name == name {
						ims = append(ims, im)
					}
				}
			} else if ims, err = c.ListImages(ctx, name); err != nil {
				return err
			}
			return printList(a, ims, imageHeader, imageRow)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "only images with this name")
	cmd.Flags().StringVarP(&project, "project", "p", "", "only this project's own images (name or id)")
	cmd.Flags().StringVarP(&tenant, "tenant", "t", "", "tenant of the project -p names (default: the current tenant)")
	return cmd
}

func (a *app) imageShowCmd() *cobra.Command {
	return showCmd(a, &cobra.Command{
		Use:     "show ID|NAME [-p PROJECT]",
		Short:   "Show an image",
		Example: "  photon image show ubuntu\n  photon image show 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e -o json",
		Args:    exactArgs(1, "ID|NAME"),
	}, a.imageObject(), func(im *api.Image) error {
		row := imageRow(*im)
		var settings []string
		for _, st := range im.Settings {
			settings = append(settings, st.Name+"="+st.DefaultValue)
		}
		return a.show(im, row, []string{"ID", im.ID, "Name", im.Name, "State", im.State, "Size", row[3] + fmt.Sprintf(" (%d bytes)", im.Size),
			"Format", orDash(im.Format), "SHA-256", orDash(im.SHA256), "Replication", row[4],
			"Replication progress", orDash(im.ReplicationProgress), "Seeding progress", orDash(im.SeedingProgress),
			"Scope", row[5], "Used by VMs", row[6], "Settings", orDash(strings.Join(settings, ", ")),
			"Tags", orDash(joinComma(im.Tags))}, nil)
	})
}

func (a *app) imageDeleteCmd() *cobra.Command {
	return deleteCmd(a, &cobra.Command{
		Use:     "delete ID|NAME [-p PROJECT]",
		Short:   "Delete an image; one VMs still use goes PENDING_DELETE until the last is gone",
		Example: "  photon image delete ubuntu\n  photon image delete 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e",
		Args:    exactArgs(1, "ID|NAME"),
	}, a.imageObject(), (*client.Client).DeleteImage, nil)
}

// progressBar draws "FILE [=====>    ]  45%  12.3 MB/27.0 MB  5.1 MB/s" on
// one terminal line, redrawn at most every progressEvery.
type progressBar struct {
	w     io.Writer
	label string
	now   func() time.Time

	mu          sync.Mutex
	sent, total int64
	start, last time.Time
	drawn       int64 // sent when last drawn, -1 before the first
	finished    bool
}

const (
	progressEvery = 100 * time.Millisecond
	barWidth      = 30
)

func newProgressBar(w io.Writer, label string, total int64) *progressBar {
	p := &progressBar{w: w, label: label, total: total, now: time.Now, drawn: -1}
	p.start = p.now()
	return p
}

// update is a client.ImageUpload Progress callback.
func (p *progressBar) update(sent, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent, p.total = sent, total
	if t := p.now(); !p.finished && (t.Sub(p.last) >= progressEvery || sent == total) {
		p.last = t
		p.draw()
	}
}

// finish draws the last state (unless it is on screen) and ends the line.
func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	if p.drawn != p.sent {
		p.draw()
	}
	fmt.Fprintln(p.w)
}

func (p *progressBar) draw() {
	frac := 0.0
	if p.total > 0 {
		frac = min(float64(p.sent)/float64(p.total), 1)
	}
	fill := int(frac * barWidth)
	bar := strings.Repeat("=", fill)
	if fill < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-fill-1)
	}
	rate := ""
	if el := p.now().Sub(p.start).Seconds(); el > 0 {
		rate = "  " + mib(int64(float64(p.sent)/el)) + "/s"
	}
	fmt.Fprintf(p.w, "\r%s [%s] %3d%%  %s/%s%s\x1b[K", p.label, bar, int(frac*100), mib(p.sent), mib(p.total), rate)
	p.drawn = p.sent
}

// mib formats a byte count in MB with one decimal: "12.3 MB".
func mib(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }
