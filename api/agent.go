package api

import (
	"bufio"
	"errors"
	"io"
	"net/http"
)

// The agent protocol (ours): how `photond agent` and the controller talk.
// Routes live under /v1/agent/ and need a host credential.

// DiskDesired is a disk a VM should have.
type DiskDesired struct {
	ID         string  `json:"id"`
	Kind       string  `json:"kind"`
	Datastore  string  `json:"datastore"`
	CapacityGB float64 `json:"capacityGb"`
	BootDisk   bool    `json:"bootDisk"`
	// ImageID is the boot disk's source image, if any, and ImageSHA256 its
	// content's checksum, which the host verifies after download.
	ImageID     string `json:"imageId,omitempty"`
	ImageSHA256 string `json:"imageSha256,omitempty"`
	// ImageFormat is the format the controller stored the image in
	// (Image.Format: "qcow2", "raw", "vhdx" or "iso"). The host opens the
	// image as this format only, never as what its content claims to be,
	// and with no backing file of its own. Empty from controllers older
	// than the field: the host then probes the format, with the same
	// checks.
	ImageFormat string `json:"imageFormat,omitempty"`
}

// VMDesired is what a host should make of one VM.
type VMDesired struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	CPUCount int    `json:"cpuCount"`
	MemoryMB int64  `json:"memoryMb"`
	// Power is STARTED, STOPPED or SUSPENDED.
	Power       string            `json:"power"`
	Disks       []DiskDesired     `json:"disks"`
	Environment map[string]string `json:"environment,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// NICs are the VM's network interfaces, in the guest's order.
	NICs []NICDesired `json:"nics,omitempty"`
	// Generation rises with every change of the desired state; the agent
	// reports the generation it has carried out.
	Generation int64 `json:"generation"`
}

// HostDesiredState is the answer of GET /v1/agent/hosts/{id}/desired.
type HostDesiredState struct {
	HostID string `json:"hostId"`
	// Revision orders answers; pass it back as ?after= to wait for a change.
	Revision int64       `json:"revision"`
	VMs      []VMDesired `json:"vms"`
	// Changes says VMs lists only the VMs whose desired state changed
	// since the last desired state sent on the same stream, and RemovedVMs
	// those no longer desired on the host; the other fields are whole. A
	// host's stream sends such desired states when it asks for them
	// (?changes=true), after the first, which is whole. Never on a long
	// poll's answer.
	Changes    bool     `json:"changes,omitempty"`
	RemovedVMs []string `json:"removedVms,omitempty"`
	// Images to hold in the host's cache (EAGER replication), by id.
	Images []string `json:"images"`
	// Networks are the routers and subnets the host's VMs' NICs need;
	// whole in every desired state (also one with Changes).
	Networks *HostNetworkDesired `json:"networks,omitempty"`
	// Consoles are console sessions waiting for the host: for each, the
	// agent streams the VM's serial console to
	// POST /v1/agent/hosts/{id}/console/{session}.
	Consoles []ConsoleSession `json:"consoles,omitempty"`
	// DeleteDisks are deleted persistent disks whose files the host may
	// hold; it deletes them and reports their ids in HostStatusReport.DeletedDisks.
	DeleteDisks []DiskDesired `json:"deleteDisks,omitempty"`
	// PartialReports says the controller takes partial status reports
	// (HostStatusReport.Partial).
	PartialReports bool `json:"partialReports,omitempty"`
	// ReportOnPoll says the controller takes a status report with the
	// long poll: POST /v1/agent/hosts/{id}/desired?after=<revision> with a
	// HostStatusReport body records the report as POST .../status does,
	// answers 200 (its headers) as soon as it is recorded, and sends this
	// desired state (the body) when it is due, as GET does. A host whose
	// change is ready when it polls again saves a request.
	ReportOnPoll bool `json:"reportOnPoll,omitempty"`
	// Stream says the controller takes the host's stream: one long
	// request, POST /v1/agent/hosts/{id}/stream?after=<revision>, whose
	// body carries the host's reports (HostStreamReport, one JSON object
	// per line) and whose answer carries, one per line, an
	// acknowledgement of each report once it is recorded and the host's
	// desired state whenever it changes (HostStreamMessage). It replaces
	// the long polls and the reports of their own: a message costs a
	// fraction of a request's headers, stream and handler.
	Stream bool `json:"stream,omitempty"`
}

// HostStreamReport is a host's report on its stream. Seq numbers the
// host's reports on the stream; the acknowledgement names it.
type HostStreamReport struct {
	Seq    int64            `json:"seq"`
	Report HostStatusReport `json:"report"`
}

// HostStreamMessage is one line of the controller's side of a host's
// stream: an acknowledgement (Ack, the report's Seq: recorded, or, with
// Error, refused as POST .../status would be) or a desired state.
type HostStreamMessage struct {
	Ack     int64             `json:"ack,omitempty"`
	Error   *Error            `json:"error,omitempty"`
	Desired *HostDesiredState `json:"desired,omitempty"`
}

// ConsoleSession asks a host for a VM's serial console: a user's
// GET /v1/vms/{id}/console waits for the agent to send it. It lives (as
// consolereq/<host>/<session> under a short lease) while that GET does.
type ConsoleSession struct {
	// Session names the waiting request, e.g. "0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e".
	Session string `json:"session"`
	// VMID is the VM whose console to send.
	VMID string `json:"vmId"`
	// Follow: keep sending what the VM writes until the controller answers
	// the POST (the user went away) or the VM is deleted.
	Follow bool `json:"follow,omitempty"`
	// Controller is the address of the controller holding the GET (for
	// logs; the POST must reach that controller).
	Controller string `json:"controller,omitempty"`
}

// VMObserved is a VM as the host's driver reports it.
type VMObserved struct {
	ID string `json:"id"`
	// State is STARTED, STOPPED, SUSPENDED or ERROR.
	State string `json:"state"`
	// Generation of the desired state last carried out.
	Generation int64 `json:"generation"`
	// Error explains an ERROR state or a failure to carry out Generation.
	Error string `json:"error,omitempty"`
	// Gone, in a partial report: the host no longer holds the VM.
	Gone bool `json:"gone,omitempty"`
}

// HostStatusReport is the body of POST /v1/agent/hosts/{id}/status: the
// heartbeat, with what the host observes.
type HostStatusReport struct {
	// UnderlayIP is the host's address on the network that carries the
	// overlays (its VXLAN endpoint), e.g. "192.0.2.11".
	UnderlayIP string            `json:"underlayIp,omitempty"`
	Capacity   HostResources     `json:"capacity"`
	Datastores []DatastoreReport `json:"datastores"`
	VMs        []VMObserved      `json:"vms"`
	// Images cached on the host, by id.
	Images []string `json:"images"`
	// DeletedDisks are disks of HostDesiredState.DeleteDisks now gone.
	DeletedDisks []string `json:"deletedDisks,omitempty"`
	// Partial: VMs lists only the VMs whose observation changed since the
	// last report the controller accepted (a VM no longer held: Gone);
	// the others are as that report said. Without it VMs is every VM the
	// host holds, and a VM it should run but does not list is not present.
	// Sent only to a controller whose desired state says PartialReports.
	Partial bool `json:"partial,omitempty"`
}

// ReadStreamLine reads one line of a host's stream (either side: one JSON
// object per line) of at most max bytes, its newline included; a longer
// one is an *http.MaxBytesError, read no further than max plus the
// reader's buffer. A stream that ends inside a line is
// io.ErrUnexpectedEOF; one that ends between lines io.EOF.
func ReadStreamLine(br *bufio.Reader, max int64) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		switch {
		case err == nil && line == nil:
			if int64(len(frag)) > max {
				return nil, &http.MaxBytesError{Limit: max}
			}
			return frag, nil
		case err == nil:
			line = append(line, frag...)
			if int64(len(line)) > max {
				return nil, &http.MaxBytesError{Limit: max}
			}
			return line, nil
		case !errors.Is(err, bufio.ErrBufferFull):
			if err == io.EOF && (len(line) > 0 || len(frag) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = append(line, frag...)
		if int64(len(line)) > max {
			return nil, &http.MaxBytesError{Limit: max}
		}
	}
}
