package sim_test

import (
	"context"
	"fmt"

	"github.com/emberwatch/emberwatch/drivers/profile"
	firmwareprofiles "github.com/emberwatch/emberwatch/firmware-profiles"
	"github.com/emberwatch/emberwatch/internal/sim"
)

// A SunSpec rack's image starts with "SunS" and model 1 (L = 66).
func ExampleNewSunSpecRack() {
	d, err := sim.NewSunSpecRack("rack", sim.RackOpts{Strings: 1, Modules: 1, Cells: 2}, nil, nil)
	if err != nil {
		panic(err)
	}
	regs, _ := d.Image().ReadRegs(sim.Holding, 40000, 4, nil)
	fmt.Printf("%04X\n", regs)
	// Output: [5375 6E53 0001 0042]
}

// Running a simulation in-process, as tests and the demo do.
func ExampleNew() {
	profiles, err := profile.Load(nil, firmwareprofiles.FS)
	if err != nil {
		panic(err)
	}
	cfg, err := sim.ParseConfig("sim.yaml", []byte(`
devices:
  - id: rack-a1
    profile: sunspec
    listen: tcp://127.0.0.1:0
    rack: {strings: 1, modules: 2, cells: 4}
`))
	if err != nil {
		panic(err)
	}
	s, err := sim.New(cfg, profiles, nil)
	if err != nil {
		panic(err)
	}
	if err := s.Start(context.Background()); err != nil {
		panic(err)
	}
	defer s.Close()
	// Values follow the project's conventions; aggregates follow cells.
	_ = s.Set("rack-a1", "string[1].module[2].cell[3].temperature.celsius", 48.5)
	v, _, _ := s.Value("rack-a1", "string[1].module[2].cell.temperature.max.celsius")
	cell, _, _ := s.Value("rack-a1", "string[1].module[2].cell.temperature.max.cell")
	fmt.Println(v, cell)
	// Output: 48.5 3
}
