package plugins

import _ "embed"

// mqttWasm is the MQTT 3.1.1 transport (kind: transport), written in C
// with the C SDK; scripts/build-fixtures.sh builds it from mqtt/mqtt.c.
//
//go:embed mqtt/mqtt.wasm
var mqttWasm []byte

func init() { registerBuiltin("mqtt", mqttWasm) }
