// Package rtu is a Modbus RTU slave for the simulator: it reads RTU frames
// (unit id, function code, data, CRC-16 with polynomial 0xA001, low byte
// first) from a serial port, a PTY or a TCP stream ("RTU over TCP"), and
// answers read requests (function codes 1, 2, 3 and 4) through the same
// simonvetter modbus.RequestHandler that the TCP server uses.
//
// # Framing
//
// Real RTU delimits frames by 3.5 characters of silence. A PTY or a TCP
// stream carries no timing, so the slave finds frame ends by length instead:
// read requests are always 8 bytes; writes (5, 6: 8 bytes; 15, 16: 9 bytes
// plus their byte count) are consumed and answered "illegal function"
// because the simulator is read-only. A frame with a bad CRC is dropped one
// byte at a time until the stream resynchronises, and a partial frame
// followed by a pause (the link's read timeout) is discarded, as a slave on
// a wire would.
//
// # Unit ids
//
// Frames for unit ids the handler does not serve get no answer, like on a
// multi-drop RS-485 line, and so does broadcast (unit 0). A handler returns
// ErrNoResponse to stay silent (a device injected with a timeout fault).
package rtu
