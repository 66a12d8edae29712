package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
)

// Client talks to a running daemon's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// APIError is a non-200 answer of the daemon: its HTTP status and its message.
type APIError struct {
	// Status is the HTTP status code: 400 for a bad request, 404 for something
	// that does not exist, 409 for something the daemon could not do.
	Status int
	// Msg is the daemon's "error" text.
	Msg string
}

func (e *APIError) Error() string { return e.Msg }

func (c *Client) do(ctx context.Context, p string) (*http.Response, error) {
	return c.send(ctx, "GET", p, nil)
}

// send makes one request with an optional JSON body and turns a non-200 answer into
// an *APIError carrying the message the API's JSON names.
func (c *Client) send(ctx context.Context, method, p string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vnetd"+p, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is vnetd running?)", c.path, err)
	}
	if resp.StatusCode != 200 {
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return nil, &APIError{Status: resp.StatusCode, Msg: e.Error}
	}
	return resp, nil
}

// AddForward asks the daemon to start a forward (POST /v1/forwards).
func (c *Client) AddForward(ctx context.Context, s config.ForwardSpec) (daemon.ForwardStatus, error) {
	var st daemon.ForwardStatus
	resp, err := c.send(ctx, "POST", "/v1/forwards", s)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// RemoveForward stops the forward named name, e.g. "tcp/127.0.0.1:8080".
func (c *Client) RemoveForward(ctx context.Context, name string) error {
	resp, err := c.send(ctx, "DELETE", ForwardPath(name), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Raw fetches an endpoint's JSON body unparsed (for --json output).
func (c *Client) Raw(ctx context.Context, p string) ([]byte, error) {
	resp, err := c.do(ctx, p)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Get fetches an endpoint and decodes its JSON into v.
func (c *Client) Get(ctx context.Context, p string, v any) error {
	resp, err := c.do(ctx, p)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Call sends method (POST, PUT, DELETE...) to p with in as its JSON body (nil: none)
// and decodes the JSON answer into out (nil: discarded).
func (c *Client) Call(ctx context.Context, method, p string, in, out any) error {
	resp, err := c.send(ctx, method, p, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// NSPath is the endpoint of a namespace view.
func NSPath(ns, view string) string {
	return "/v1/ns/" + url.PathEscape(ns) + "/" + url.PathEscape(view)
}

// FDBPath is the endpoint of a switch's FDB.
func FDBPath(sw string) string { return "/v1/fdb/" + url.PathEscape(sw) }

// Ping pings from a namespace, calling each per reply as it streams in.
func (c *Client) Ping(ctx context.Context, ns, addr string, count int, each func(daemon.PingResult)) error {
	resp, err := c.do(ctx, fmt.Sprintf("/v1/ping/%s/%s?count=%d", url.PathEscape(ns), url.PathEscape(addr), count))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var p daemon.PingResult
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			return fmt.Errorf("ping: bad reply %q: %w", line, err)
		}
		each(p)
	}
	return sc.Err()
}
