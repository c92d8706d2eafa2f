package hosttest

import (
	"testing"
	"time"
)

// TestStartRedis: the helper's server answers, stops on Kill (its port
// refuses), and answers again on the same address after Restart.
func TestStartRedis(t *testing.T) {
	r := StartRedis(t, RedisOptions{Password: "pw-for-test"})
	if got, err := r.Command("PING"); err != nil || got != "+PONG" {
		t.Fatalf("PING: %q, %v", got, err)
	}
	if got, err := r.Command("CONFIG", "GET", "save"); err != nil || got != "*2" {
		t.Fatalf("CONFIG GET save: %q, %v", got, err)
	}
	r.Kill()
	if _, err := r.Command("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	r.Restart()
	CheckFor(t, 10*time.Second, func() error {
		_, err := r.Command("PING")
		return err
	})
}
