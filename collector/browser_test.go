package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emberwatch/emberwatch/internal/testenv"
	"golang.org/x/net/websocket"
)

// cdp is a minimal Chrome DevTools Protocol client over one page target.
type cdp struct {
	ws *websocket.Conn
	id int
}

func (c *cdp) eval(t *testing.T, expr string) (string, error) {
	c.id++
	req := map[string]any{"id": c.id, "method": "Runtime.evaluate",
		"params": map[string]any{"expression": expr, "returnByValue": true}}
	if err := websocket.JSON.Send(c.ws, req); err != nil {
		return "", err
	}
	c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var resp struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
				ExceptionDetails any `json:"exceptionDetails"`
			} `json:"result"`
			Error any `json:"error"`
		}
		if err := websocket.JSON.Receive(c.ws, &resp); err != nil {
			return "", err
		}
		if resp.ID != c.id {
			continue // an event
		}
		if resp.Error != nil || resp.Result.ExceptionDetails != nil {
			return "", fmt.Errorf("evaluate %q: %v %v", expr, resp.Error, resp.Result.ExceptionDetails)
		}
		return fmt.Sprint(resp.Result.Result.Value), nil
	}
}

// A real browser shows a rack turning critical without a reload.
func TestStatusPageInChromium(t *testing.T) {
	bin := testenv.Need(t, "chromium")
	srv := testenv.NATS(t)
	c := startCollector(t, srv.ClientURL(), nil, nil)
	_, js := connect(t, srv.ClientURL())
	siteWithTwoRacks(t, js)
	testenv.WaitFor(t, 10*time.Second, func() error {
		if len(c.State().Snapshot(false).Racks) != 2 {
			return fmt.Errorf("racks not in state yet")
		}
		return nil
	})

	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=*", "about:blank")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	wsRE := regexp.MustCompile(`DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)`)
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := wsRE.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[2]
			}
		}
	}()
	var devtools string
	select {
	case devtools = <-port:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not print its DevTools address in 30s")
	}
	page := "http://" + c.HTTPAddr() + "/"
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, "http://127.0.0.1:"+devtools+"/json/new?"+page, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var target struct {
		WS string `json:"webSocketDebuggerUrl"`
	}
	json.NewDecoder(resp.Body).Decode(&target)
	resp.Body.Close()
	if target.WS == "" {
		t.Fatal("no page target")
	}
	ws, err := websocket.Dial(target.WS, "", "http://127.0.0.1/")
	if err != nil {
		t.Fatalf("devtools websocket: %v", err)
	}
	defer ws.Close()
	b := &cdp{ws: ws}
	stage := `(function(){var e=document.querySelector('.rack[data-rack="07"]');return e?e.dataset.stage:"none"})()`
	testenv.WaitFor(t, 20*time.Second, func() error {
		s, err := b.eval(t, stage)
		if err != nil {
			return err
		}
		if s != "normal" {
			return fmt.Errorf("rack 07 stage on the page: %s", s)
		}
		return nil
	})
	// Mark this page load; a reload would lose the mark.
	if _, err := b.eval(t, `window.emberMark = "kept"`); err != nil {
		t.Fatal(err)
	}
	publishAlert(t, js, criticalAlert(time.Now()))
	testenv.WaitFor(t, 10*time.Second, func() error {
		s, err := b.eval(t, stage)
		if err != nil {
			return err
		}
		if s != "critical" {
			return fmt.Errorf("rack 07 stage on the page: %s", s)
		}
		return nil
	})
	mark, _ := b.eval(t, `window.emberMark`)
	if mark != "kept" {
		t.Errorf("the page was reloaded (mark %q)", mark)
	}
	txt, _ := b.eval(t, `document.getElementById("alerts").innerText`)
	for _, want := range []string{"CRITICAL thermal", "cell_temp_rate = 3.2 degC/min (threshold 2)", "gas_h2 = 40 ppm"} {
		if !strings.Contains(txt, want) {
			t.Errorf("alert list lacks %q:\n%s", want, txt)
		}
	}
	sigs, _ := b.eval(t, `document.querySelector('.rack[data-rack="07"] .sigs').textContent`)
	if sigs != "thermal: cell_temp_rate 3.2 degC/min, gas_h2 40 ppm" {
		t.Errorf("rack tile evidence %q", sigs)
	}
	bg, _ := b.eval(t, `getComputedStyle(document.querySelector('.rack[data-rack="07"]')).backgroundColor`)
	if bg != "rgb(192, 57, 43)" {
		t.Errorf("critical rack colour %s, want rgb(192, 57, 43)", bg)
	}
}
