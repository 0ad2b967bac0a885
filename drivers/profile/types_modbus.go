package profile

import "time"

// ModbusOptions are a Modbus profile's request-planning defaults and device
// quirks. Config may override the quirks per device.
type ModbusOptions struct {
	// MaxRegisters per read (default 125, the protocol's limit); some
	// devices accept fewer.
	MaxRegisters int `yaml:"max_registers,omitempty"`
	// MaxGap is how many unused registers a read may span to merge two
	// neighbouring reads (default 16).
	MaxGap int `yaml:"max_gap,omitempty"`
	// Unreadable ranges are never spanned by a read (devices that answer an
	// exception for undefined registers).
	Unreadable []AddrRange `yaml:"unreadable,omitempty"`
	// Pause between requests to the device.
	Pause time.Duration `yaml:"pause,omitempty"`
	// CloseAfterRound closes the connection after each round (gateways that
	// hold few sockets).
	CloseAfterRound bool `yaml:"close_after_round,omitempty"`
	// BusyRetries retries a request answered with "server device busy".
	BusyRetries int `yaml:"busy_retries,omitempty"`
	// WordOrder and ByteOrder default every point: "big" (high word/byte
	// first, the default) or "little".
	WordOrder string `yaml:"word_order,omitempty"`
	ByteOrder string `yaml:"byte_order,omitempty"`
	// Sentinels "sunspec" adds SunSpec's not-implemented values per type
	// (0x8000, 0xFFFF, ...) to every point.
	Sentinels string `yaml:"sentinels,omitempty"`
}

// AddrRange is an inclusive range of register addresses in one space.
type AddrRange struct {
	Space string `yaml:"space"`
	From  uint16 `yaml:"from"`
	To    uint16 `yaml:"to"`
}

// ModbusAddr locates a Modbus point.
type ModbusAddr struct {
	// Space: holding (default), input, coil, discrete.
	Space string `yaml:"space,omitempty"`
	// Address is the 0-based wire address (not Modicon 4xxxx numbering),
	// relative to the enclosing block or model.
	Address *uint16 `yaml:"address,omitempty"`
	// Length in registers for strings.
	Length int `yaml:"length,omitempty"`
	// WordOrder / ByteOrder override the profile's defaults.
	WordOrder string `yaml:"word_order,omitempty"`
	ByteOrder string `yaml:"byte_order,omitempty"`
}
