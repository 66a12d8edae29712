package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/vnetd/vnetd/daemon"
)

// maxImportRequest bounds an import document (a namespace's config and state: a
// few hundred leases and neighbours fit in well under this).
const maxImportRequest = 8 << 20

func exportRoutes(mux *http.ServeMux, d *daemon.Daemon) {
	mux.HandleFunc("GET /v1/namespaces/{name}/export", func(w http.ResponseWriter, r *http.Request) {
		x, err := d.Export(r.PathValue("name"))
		switch {
		case errors.Is(err, daemon.ErrNoNamespace):
			writeErr(w, 404, err)
		case err != nil:
			writeErr(w, 500, err)
		default:
			writeJSON(w, 200, x)
		}
	})
	mux.HandleFunc("POST /v1/namespaces/import", func(w http.ResponseWriter, r *http.Request) {
		var x daemon.Export
		dec := json.NewDecoder(io.LimitReader(r.Body, maxImportRequest))
		dec.UseNumber()
		if err := dec.Decode(&x); err != nil {
			writeErr(w, 400, fmt.Errorf("bad import document: %w (want the JSON `vnetd export` writes)", err))
			return
		}
		source := r.URL.Query().Get("source")
		if source == "" {
			source = "import"
		}
		res, err := d.Import(x, source, r.URL.Query().Get("as"))
		switch {
		case errors.Is(err, daemon.ErrNamespaceExists):
			writeErr(w, 409, err)
		case errors.Is(err, daemon.ErrInvalidImport):
			writeErr(w, 400, err)
		case err != nil:
			writeErr(w, 500, err)
		default:
			writeJSON(w, 200, res)
		}
	})
}

// Export fetches namespace name's export document, unparsed.
func (c *Client) Export(ctx context.Context, name string) ([]byte, error) {
	return c.Raw(ctx, "/v1/namespaces/"+url.PathEscape(name)+"/export")
}

// Import sends an export document; as renames the namespace ("" keeps its name),
// source names the document in errors.
func (c *Client) Import(ctx context.Context, doc []byte, source, as string) (daemon.ImportResult, error) {
	var res daemon.ImportResult
	q := url.Values{}
	q.Set("source", source)
	if as != "" {
		q.Set("as", as)
	}
	resp, err := c.send(ctx, "POST", "/v1/namespaces/import?"+q.Encode(), json.RawMessage(doc))
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	return res, json.NewDecoder(resp.Body).Decode(&res)
}
