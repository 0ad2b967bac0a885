package profile_test

import (
	"log/slog"
	"testing"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
)

func TestEmbeddedProfilesLoad(t *testing.T) {
	set, err := profile.Load(slog.New(slog.DiscardHandler), firmwareprofiles.FS)
	if err != nil {
		t.Fatalf("embedded profiles:\n%v", err)
	}
	for _, id := range []string{"sunspec"} {
		if _, ok := set.Get(id); !ok {
			t.Errorf("built-in profile %q is missing", id)
		}
	}
}
