using Containerd.Cgroups.V2;
using Sandbox.Agent.Protocol;

namespace Sandbox.Shim.Vm;

/// <summary>
/// A container's cgroup v2 figures from the agent (<see cref="GetContainerStatsResponse"/>) as containerd's cgroups v2
/// Metrics, which Task Stats returns and containerd's CRI reads (io.containerd.cgroups.v2.Metrics). No limit ("max",
/// which the agent sends as 0) becomes the maximum value, as containerd's cgroups library reports it.
/// </summary>
public static class GuestCgroupMetrics
{
    public const string TypeUrl = "io.containerd.cgroups.v2.Metrics";

    public static Metrics From(GetContainerStatsResponse stats)
    {
        ulong Stat(string key) => stats.MemoryStat.TryGetValue(key, out ulong value) ? value : 0;
        return new Metrics
        {
            Pids = new PidsStat { Current = stats.PidsCurrent, Limit = stats.PidsMax },
            Cpu = new CPUStat
            {
                UsageUsec = stats.CpuUsageUsec,
                UserUsec = stats.CpuUserUsec,
                SystemUsec = stats.CpuSystemUsec,
                NrPeriods = stats.CpuNrPeriods,
                NrThrottled = stats.CpuNrThrottled,
                ThrottledUsec = stats.CpuThrottledUsec,
            },
            Memory = new MemoryStat
            {
                Anon = Stat("anon"),
                File = Stat("file"),
                KernelStack = Stat("kernel_stack"),
                Slab = Stat("slab"),
                Sock = Stat("sock"),
                Shmem = Stat("shmem"),
                FileMapped = Stat("file_mapped"),
                FileDirty = Stat("file_dirty"),
                FileWriteback = Stat("file_writeback"),
                AnonThp = Stat("anon_thp"),
                InactiveAnon = Stat("inactive_anon"),
                ActiveAnon = Stat("active_anon"),
                InactiveFile = Stat("inactive_file"),
                ActiveFile = Stat("active_file"),
                Unevictable = Stat("unevictable"),
                SlabReclaimable = Stat("slab_reclaimable"),
                SlabUnreclaimable = Stat("slab_unreclaimable"),
                Pgfault = Stat("pgfault"),
                Pgmajfault = Stat("pgmajfault"),
                Usage = stats.MemoryCurrent,
                UsageLimit = stats.MemoryMax == 0 ? ulong.MaxValue : stats.MemoryMax,
                SwapUsage = stats.MemorySwapCurrent,
            },
            MemoryEvents = new MemoryEvents { OomKill = stats.OomKills },
        };
    }
}
