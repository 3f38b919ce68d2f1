package podmetrics

import (
	"time"

	"github.com/criserver/criserver/cgroups"
)

// defs are the metrics served, grouped by family. Names, help texts,
// types and extra labels are cAdvisor's (metrics/prometheus.go), which
// the kubelet's /metrics/cadvisor has always exposed.
var defs = []def{
	// Served for every pod and container whatever the config.
	{0, "container_last_seen", "Last time a container was seen by the exporter", gauge, nil, lastSeen},
	{0, "container_creation_time_seconds", "Container creation time since unix epoch in seconds.", gauge, nil,
		timeValue(func(in *Input) time.Time { return in.Created })},
	{0, "container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil,
		timeValue(func(in *Input) time.Time {
			if in.Started.IsZero() {
				return in.Created // as cAdvisor: the creation time until started
			}
			return in.Started
		})},

	{CPU, "container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, nil,
		cpuStat(func(c *cgroups.CPUStats) uint64 { return seconds(c.UserNanos) })},
	{CPU, "container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, nil,
		cpuStat(func(c *cgroups.CPUStats) uint64 { return seconds(c.SystemNanos) })},
	// The kubelet runs cAdvisor without per-CPU usage, which then reports
	// one series labelled cpu="total".
	{CPU, "container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, []string{"cpu"},
		func(in *Input) []value {
			if in.Stats == nil {
				return nil
			}
			return []value{{v: seconds(in.Stats.CPUUsageNanos), labels: []string{"total"}, at: in.Stats.Timestamp}}
		}},
	{CPU, "container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil,
		cfsStat(func(c *cgroups.CPUStats) uint64 { return c.Periods })},
	{CPU, "container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil,
		cfsStat(func(c *cgroups.CPUStats) uint64 { return c.ThrottledPeriods })},
	{CPU, "container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil,
		cfsStat(func(c *cgroups.CPUStats) uint64 { return seconds(c.ThrottledNanos) })},

	{Memory, "container_memory_cache", "Number of bytes of page cache memory.", gauge, nil,
		memStat(func(m *cgroups.MemoryStats) uint64 { return m.Cache })},
	{Memory, "container_memory_rss", "Size of RSS in bytes.", gauge, nil,
		always(func(st *cgroups.Stats) uint64 { return st.MemoryRSS })},
	{Memory, "container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil,
		memStat(func(m *cgroups.MemoryStats) uint64 { return m.Kernel })},
	{Memory, "container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil,
		memStat(func(m *cgroups.MemoryStats) uint64 { return m.MappedFile })},
	{Memory, "container_memory_swap", "Container swap usage in bytes.", gauge, nil,
		memStat(func(m *cgroups.MemoryStats) uint64 { return m.Swap })},
	{Memory, "container_memory_failcnt", "Number of memory usage hits limits", counter, nil,
		memStat(func(m *cgroups.MemoryStats) uint64 { return m.Failcnt })},
	{Memory, "container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", gauge, nil,
		always(func(st *cgroups.Stats) uint64 { return st.MemoryUsage })},
	{Memory, "container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", gauge, nil,
		memStat(func(m *cgroups.MemoryStats) uint64 { return m.MaxUsage })},
	{Memory, "container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil,
		always(func(st *cgroups.Stats) uint64 { return st.MemoryWorkingSet })},
	{Memory, "container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"},
		memoryFailures},

	{OOM, "container_oom_events_total", "Count of out of memory events observed for the container", counter, nil,
		fromStats(func(st *cgroups.Stats) (uint64, bool) {
			if st.OOMKills == nil {
				return 0, false
			}
			return *st.OOMKills, true
		})},

	{Network, "container_network_receive_bytes_total", "Cumulative count of bytes received", counter, []string{"interface"},
		netStat(func(n *NetInterface) uint64 { return n.RxBytes })},
	{Network, "container_network_receive_packets_total", "Cumulative count of packets received", counter, []string{"interface"},
		netStat(func(n *NetInterface) uint64 { return n.RxPackets })},
	{Network, "container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", counter, []string{"interface"},
		netStat(func(n *NetInterface) uint64 { return n.RxDropped })},
	{Network, "container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", counter, []string{"interface"},
		netStat(func(n *NetInterface) uint64 { return n.RxErrors })},
	{Network, "container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", counter, []string{"interface"},
		netStat(func(n *NetInterface) uint64 { return n.TxBytes })},
	{Network, "container_network_transmit_packets_total", "Cumulative count of packets transmitted", counter, []string{"interface"},
		netStat(func(n *NetInterface) uint64 { return n.TxPackets })},
	{Network, "container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", counter, []string{"interface"},
		netStat(func(n *NetInterface) uint64 { return n.TxDropped })},
	{Network, "container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", counter, []string{"interface"},
		netStat(func(n *NetInterface) uint64 { return n.TxErrors })},

	{Disk, "container_fs_inodes_free", "Number of available Inodes", gauge, []string{"device"},
		fsStat(func(f *FsUsage) uint64 { return f.InodesFree })},
	{Disk, "container_fs_inodes_total", "Number of Inodes", gauge, []string{"device"},
		fsStat(func(f *FsUsage) uint64 { return f.Inodes })},
	{Disk, "container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, []string{"device"},
		fsStat(func(f *FsUsage) uint64 { return f.LimitBytes })},
	{Disk, "container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, []string{"device"},
		fsStat(func(f *FsUsage) uint64 { return f.UsageBytes })},

	{DiskIO, "container_fs_reads_bytes_total", "Cumulative count of bytes read", counter, []string{"device"},
		ioStat(func(d *cgroups.DeviceIO) uint64 { return d.ReadBytes })},
	{DiskIO, "container_fs_reads_total", "Cumulative count of reads completed", counter, []string{"device"},
		ioStat(func(d *cgroups.DeviceIO) uint64 { return d.Reads })},
	{DiskIO, "container_fs_writes_bytes_total", "Cumulative count of bytes written", counter, []string{"device"},
		ioStat(func(d *cgroups.DeviceIO) uint64 { return d.WriteBytes })},
	{DiskIO, "container_fs_writes_total", "Cumulative count of writes completed", counter, []string{"device"},
		ioStat(func(d *cgroups.DeviceIO) uint64 { return d.Writes })},
	{DiskIO, "container_blkio_device_usage_total", "Blkio Device bytes usage", counter, []string{"device", "major", "minor", "operation"},
		blkioUsage},

	{Process, "container_processes", "Number of processes running inside the container.", gauge, nil,
		procStat(func(p *cgroups.ProcessStats) uint64 { return p.Processes })},
	{Process, "container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil,
		procStat(func(p *cgroups.ProcessStats) uint64 { return p.FDs })},
	{Process, "container_sockets", "Number of open sockets for the container.", gauge, nil,
		procStat(func(p *cgroups.ProcessStats) uint64 { return p.Sockets })},
	{Process, "container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", gauge, nil,
		procStat(func(p *cgroups.ProcessStats) uint64 { return p.ThreadsMax })},
	{Process, "container_threads", "Number of threads running inside the container", gauge, nil,
		always(func(st *cgroups.Stats) uint64 { return st.Pids })},

	{Spec, "container_spec_cpu_period", "CPU period of the container.", gauge, nil,
		specStat(func(s *cgroups.SpecStats) uint64 { return s.CPUPeriod }, false)},
	{Spec, "container_spec_cpu_quota", "CPU quota of the container.", gauge, nil,
		specStat(func(s *cgroups.SpecStats) uint64 { return s.CPUQuota }, true)},
	{Spec, "container_spec_cpu_shares", "CPU share of the container.", gauge, nil,
		specStat(func(s *cgroups.SpecStats) uint64 { return s.CPUShares }, false)},
	{Spec, "container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil,
		specStat(func(s *cgroups.SpecStats) uint64 { return s.MemoryLimit }, false)},
	{Spec, "container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil,
		specStat(func(s *cgroups.SpecStats) uint64 { return s.MemorySwapLimit }, false)},
	{Spec, "container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", gauge, nil,
		specStat(func(s *cgroups.SpecStats) uint64 { return s.MemoryReservation }, false)},

	{Pressure, "container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", counter, nil,
		psiStat(func(p *cgroups.PressureStats) uint64 { return p.CPU.Full })},
	{Pressure, "container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", counter, nil,
		psiStat(func(p *cgroups.PressureStats) uint64 { return p.CPU.Some })},
	{Pressure, "container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", counter, nil,
		psiStat(func(p *cgroups.PressureStats) uint64 { return p.Memory.Full })},
	{Pressure, "container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", counter, nil,
		psiStat(func(p *cgroups.PressureStats) uint64 { return p.Memory.Some })},
	{Pressure, "container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", counter, nil,
		psiStat(func(p *cgroups.PressureStats) uint64 { return p.IO.Full })},
	{Pressure, "container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", counter, nil,
		psiStat(func(p *cgroups.PressureStats) uint64 { return p.IO.Some })},
}
