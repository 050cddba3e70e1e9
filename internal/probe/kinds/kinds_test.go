package kinds

import (
	"testing"

	"healthbridge/internal/config"
)

func TestRegistryCoversEveryConfigKind(t *testing.T) {
	for _, k := range config.Kinds() {
		if Registry[k] == nil {
			t.Errorf("config kind %q has no constructor", k)
		}
	}
	if len(Registry) != len(config.Kinds()) {
		t.Errorf("registry has %d kinds, config knows %d", len(Registry), len(config.Kinds()))
	}
}
