package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

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

func (c *Client) do(ctx context.Context, p string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://vnetd"+p, nil)
	if err != nil {
		return nil, err
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
		return nil, fmt.Errorf("%s", e.Error)
	}
	return resp, nil
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
