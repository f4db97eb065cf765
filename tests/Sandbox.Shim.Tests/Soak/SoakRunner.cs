using System.Diagnostics;
using Sandbox.Ctl;
using Sandbox.Hypervisors.Processes;
using Sandbox.Hypervisors.Qemu;
using Sandbox.Runtime.Cgroups;
using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;
using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests.Soak;

/// <summary>One cycle to run: its container's id, its number, and the fault, the moment and how far into that moment
/// (0..1 of the phase's usual length) it strikes.</summary>
public sealed record SoakPlan(string ContainerId, int Cycle, (SoakFault Fault, SoakMoment Moment, double Fraction) What);

/// <summary>What one soak cycle did and found.</summary>
public sealed record SoakCycleResult(int Cycle, SoakFault Fault, SoakMoment Moment, TimeSpan FaultAfter, bool Injected,
    IReadOnlyList<string> Leaks, IReadOnlyList<string> LostExits, IReadOnlyList<string> Hangs, IReadOnlyList<string> Failures,
    IReadOnlyList<string> SandboxctlDisagreements, TimeSpan Duration)
{
    public bool Clean => Leaks.Count == 0 && LostExits.Count == 0 && Hangs.Count == 0 && Failures.Count == 0 &&
                         SandboxctlDisagreements.Count == 0;

    public override string ToString() =>
        $"cycle {Cycle}: {Fault} during {Moment} at +{FaultAfter.TotalSeconds:0.00} s{(Injected ? "" : " (not injected: no target)")}, " +
        $"{Duration.TotalSeconds:0.0} s: " +
        (Clean ? "clean" : string.Join("; ", Leaks.Select(l => "leak: " + l).Concat(LostExits.Select(l => "lost exit: " + l))
            .Concat(Hangs.Select(h => "hung: " + h)).Concat(Failures.Select(f => "failed: " + f))
            .Concat(SandboxctlDisagreements.Select(d => "sandboxctl: " + d))));
}

/// <summary>The figures a soak prints: `soak: cycles N leaks 0 lost_exits 0 hung 0`.</summary>
public sealed record SoakSummary(int Cycles, int Leaks, int LostExits, int Hung, int Failed, int SandboxctlDisagreements, int NotInjected)
{
    public static SoakSummary Of(IReadOnlyCollection<SoakCycleResult> results) => new(results.Count,
        results.Sum(r => r.Leaks.Count), results.Sum(r => r.LostExits.Count), results.Sum(r => r.Hangs.Count),
        results.Sum(r => r.Failures.Count), results.Sum(r => r.SandboxctlDisagreements.Count), results.Count(r => !r.Injected));

    public override string ToString() =>
        $"soak: cycles {Cycles} leaks {Leaks} lost_exits {LostExits} hung {Hung} failed {Failed} sandboxctl_disagreements {SandboxctlDisagreements}";
}

/// <summary>
/// Issue 15's soak: cycles of a container's life (`ctr run -d`, an exec, an exec that streams output, kill and delete)
/// on a private containerd, each with one fault at a random moment (<see cref="SoakFault"/>, <see cref="SoakMoment"/>).
/// Whatever the fault broke, the cycle then removes the task and the container the way an operator would (kill, `task
/// rm -f`, `container rm`) and checks: nothing left (process, mount, socket, state, cgroup, containerd task
/// directory), an exit event for every task that started, containerd answering, and `sandboxctl list` and `gc` agreeing
/// on what is left (<see cref="SandboxctlDisagreementsAsync"/>). Every ctr call is bounded; one that
/// does not finish in time is a hang. Cycle N of seed S always picks the same fault, moment and delay.
/// </summary>
public sealed class SoakRunner
{
    /// <summary>Longer than any RPC timeout of the soak's shim configuration: a ctr call still running is hung.</summary>
    private static readonly TimeSpan CtrTimeout = TimeSpan.FromSeconds(150);

    private readonly VmBackedContainerdFixture _fixture;
    private readonly TextWriter _log;
    private readonly SemaphoreSlim _containerdRestarting = new(1, 1);

    public SoakRunner(VmBackedContainerdFixture fixture, TextWriter log)
    {
        _fixture = fixture;
        _log = log;
    }

    private PrivateContainerd Containerd => _fixture.Containerd;

    /// <summary>The shim configuration a soak runs with: readiness and RPC timeouts short enough that a frozen guest
    /// is given up within 20 s and costs a cycle well under a minute, not ten, and long enough for a TCG boot on a loaded 2-core machine.
    /// A shim that containerd lost exits after 5 s (idle_exit lands in the [runtime] table the fixture writes first),
    /// within the cycle's 15 s of settling.</summary>
    public const string Configuration = "idle_exit = 5\n[agent]\nready_timeout = 60\nrpc_timeout = 20\nliveness_timeout = 20\n";

    /// <summary>The faults and moments of cycle <paramref name="cycle"/>: cycles 0..5 take each fault once, in a
    /// seeded random moment; later ones draw both.</summary>
    public static (SoakFault Fault, SoakMoment Moment, double Fraction) Plan(int seed, int cycle)
    {
        var random = new Random(unchecked(seed * 100_003 + cycle) & int.MaxValue); // not HashCode: its seed differs per process
        var faults = Enum.GetValues<SoakFault>();
        var fault = cycle < faults.Length ? faults[cycle] : faults[random.Next(faults.Length)];
        // a panic needs a container to trigger it from: not during `ctr run`
        var moments = fault == SoakFault.GuestPanic ? new[] { SoakMoment.Exec, SoakMoment.Streaming, SoakMoment.Delete } : Enum.GetValues<SoakMoment>();
        return (fault, moments[random.Next(moments.Length)], random.NextDouble());
    }

    /// <summary>Cycles <paramref name="first"/> .. first + count - 1 of <paramref name="seed"/> (a failed cycle replays
    /// alone with its seed and number).</summary>
    public Task<IReadOnlyList<SoakCycleResult>> RunAsync(int count, int seed, CancellationToken cancellationToken, int first = 0) =>
        RunPlansAsync(Enumerable.Range(first, count).Select(cycle => new SoakPlan($"soak-{seed}-{cycle}", cycle, Plan(seed, cycle))), cancellationToken);

    /// <summary>One cycle per plan. After a cycle that left something, the soak removes it by force, so that each leak is
    /// counted once and the next cycle starts clean.</summary>
    public async Task<IReadOnlyList<SoakCycleResult>> RunPlansAsync(IEnumerable<SoakPlan> plans, CancellationToken cancellationToken)
    {
        var results = new List<SoakCycleResult>();
        using var events = await ContainerdEventLog.StartAsync(Containerd);
        foreach (var plan in plans)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var result = await RunCycleAsync(plan, events);
            results.Add(result);
            _log.WriteLine(result);
            if (result.Leaks.Count > 0 || result.Hangs.Count > 0)
                await ClearAsync(plan.ContainerId);
        }
        return results;
    }

    /// <summary>Removes by force what a failed cycle left: its shims and VM processes, the task and container records,
    /// mounts, state and cgroups.</summary>
    private async Task ClearAsync(string id)
    {
        KillAll(Containerd.LeftoverShimProcesses());
        // With its shims dead, the sandbox's leftovers are gc's to remove; what gc misses, the lines below remove by force.
        var gc = await GcCommand.RunAsync(_fixture.StateRoot, dryRun: false, CancellationToken.None);
        foreach (var sandbox in gc.Sandboxes)
            _log.WriteLine($"  sandboxctl gc: sandbox {sandbox.SandboxId}: {(sandbox.Removed ? "removed" : "FAILED: " + sandbox.Error)}");
        foreach (var orphan in gc.Orphans)
            _log.WriteLine($"  sandboxctl gc: orphan process {orphan.Pid}: {(orphan.Killed ? "killed" : "FAILED: " + orphan.Error)}");
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            await LeftoverVmProcesses.KillAsync(_fixture.StateRoot, timeout.Token);
        await Containerd.CtrAsync(["task", "rm", "-f", id], TimeSpan.FromSeconds(60));
        await Containerd.CtrAsync(["container", "rm", id], TimeSpan.FromSeconds(60));
        var mounts = VmBackedContainerdFixture.MountPointsBelow(Containerd.Directory).Concat(VmBackedContainerdFixture.MountPointsBelow(_fixture.StateRoot));
        foreach (string mountPoint in mounts.OrderByDescending(m => m.Length))
            await ExternalCommand.RunAsync("umount", ["-l", mountPoint], TimeSpan.FromSeconds(30));
        foreach (string entry in SandboxStateDirectory.List(_fixture.StateRoot).Select(s => s.Path))
            Directory.Delete(entry, recursive: true);
        foreach (string socket in Containerd.LeftoverShimSockets())
            File.Delete(socket);
        foreach (string cgroup in HostCgroupMounts.Read().Select(h => Path.Combine(h.MountPoint, "default", id)).Where(Directory.Exists))
        {
            try
            {
                Directory.Delete(cgroup); // empty once the VM processes are gone
            }
            catch (IOException e)
            {
                _log.WriteLine($"cannot remove {cgroup}: {e.Message}");
            }
        }
    }

    private async Task<SoakCycleResult> RunCycleAsync(SoakPlan plan, ContainerdEventLog events)
    {
        var (fault, moment, fraction) = plan.What;
        string id = plan.ContainerId;
        int cycle = plan.Cycle;
        var clock = Stopwatch.StartNew();
        var hangs = new List<string>();
        var failures = new List<string>();
        var phases = new PhaseSignals();
        var injection = InjectAtAsync(id, fault, moment, fraction, phases, events);

        await LiveAsync(id, fault, phases, hangs, failures);
        var (injected, faultAfter) = await injection;
        await RemoveAsync(id, hangs);
        var leaks = await LeaksAfterSettlingAsync(id);
        var disagreements = await SandboxctlDisagreementsAsync();
        var lostExits = LostExits(id, events.For(id), phases.EndedBeforeContainerdServedAgain);
        if ((await Containerd.CtrAsync(["version"], TimeSpan.FromSeconds(30))).ExitCode != 0)
            hangs.Add("containerd does not answer `ctr version`");
        return new SoakCycleResult(cycle, fault, moment, faultAfter, injected, leaks, lostExits, hangs, failures, disagreements, clock.Elapsed);
    }

    /// <summary>The container's life, one phase after another; each phase's start is signalled to the fault. A call
    /// that does not return is a hang. A call that fails before the fault struck is a failure (without one, a cycle
    /// whose container never ran would pass); after it, failures are what the fault is expected to cause.</summary>
    private async Task LiveAsync(string id, SoakFault fault, PhaseSignals phases, List<string> hangs, List<string> failures)
    {
        async Task CtrAsync(string[] arguments)
        {
            var result = await this.CtrAsync(hangs, arguments);
            if (result is { ExitCode: not 0 } && !phases.Struck)
                failures.Add($"`ctr {string.Join(' ', arguments.Take(2))}` failed before the fault: {result.Stderr.Trim()}");
        }

        var runFlags = fault == SoakFault.GuestPanic ? new[] { "--privileged" } : Array.Empty<string>();
        phases.Begin(SoakMoment.Run);
        await CtrAsync(["run", "--fifo-dir", Containerd.FifoDirectory, "-d", "--runtime", VmBackedContainerdFixture.Runtime, .. runFlags,
            _fixture.Image, id, "sleep", "1000"]);
        phases.Begin(SoakMoment.Exec);
        await CtrAsync(["task", "exec", "--fifo-dir", Containerd.FifoDirectory, "--exec-id", "short", id, "sh", "-c", "sleep 1; echo done"]);
        phases.Begin(SoakMoment.Streaming);
        await CtrAsync(["task", "exec", "--fifo-dir", Containerd.FifoDirectory, "--exec-id", "stream", id, "seq", "1", "300000"]);
        phases.Begin(SoakMoment.Delete);
        await CtrAsync(["task", "kill", "-s", "SIGKILL", id]);
        await WaitUntilStoppedOrGoneAsync(id, TimeSpan.FromSeconds(30));
        await CtrAsync(["task", "rm", id]);
        phases.End();
    }

    /// <summary>What an operator does with a task in any state: SIGKILL, wait, `task rm -f`, `container rm`.</summary>
    private async Task RemoveAsync(string id, List<string> hangs)
    {
        if (await TaskStatusAsync(id) is not null)
        {
            await CtrAsync(hangs, ["task", "kill", "-s", "SIGKILL", id]);
            await WaitUntilStoppedOrGoneAsync(id, CtrTimeout);
            await CtrAsync(hangs, ["task", "rm", "-f", id]);
            if (await TaskStatusAsync(id) is { } status)
                hangs.Add($"task {id} is still listed ({status}) after `ctr task rm -f`");
        }
        await CtrAsync(hangs, ["container", "rm", id]);
    }

    private async Task<CommandResult?> CtrAsync(List<string> hangs, string[] arguments)
    {
        await _containerdRestarting.WaitAsync();
        _containerdRestarting.Release();
        try
        {
            return await Containerd.CtrAsync(arguments, CtrTimeout);
        }
        catch (TimeoutException e)
        {
            hangs.Add(e.Message.Split('\n')[0]);
            return null;
        }
    }

    /// <summary>The task's status in `ctr task ls` (RUNNING, STOPPED, ...), null when it is not listed.</summary>
    private Task<string?> TaskStatusAsync(string id) => Containerd.TaskStatusAsync(id);

    private Task WaitUntilStoppedOrGoneAsync(string id, TimeSpan timeout) => Containerd.WaitUntilTaskStoppedOrGoneAsync(id, timeout);

    /// <summary>Waits for <paramref name="moment"/>, then <paramref name="fraction"/> of that phase's usual length, and
    /// strikes. The phase may end sooner: the fault then strikes at the start of whatever comes next.</summary>
    private async Task<(bool Injected, TimeSpan After)> InjectAtAsync(string id, SoakFault fault, SoakMoment moment, double fraction,
        PhaseSignals phases, ContainerdEventLog events)
    {
        var phaseStart = await phases.WaitForAsync(moment);
        var delay = TimeSpan.FromSeconds(fraction * UsualLength(moment).TotalSeconds);
        await Task.WhenAny(Task.Delay(delay), phases.Ended);
        var after = DateTime.UtcNow - phaseStart;
        phases.Strike();
        return (await StrikeAsync(id, fault, phases, events), after);
    }

    /// <summary>How long each phase usually takes under TCG on the 2-core machine (a `ctr run -d` about 3.5 s).</summary>
    private static TimeSpan UsualLength(SoakMoment moment) => moment switch
    {
        SoakMoment.Run => TimeSpan.FromSeconds(3.5),
        SoakMoment.Exec => TimeSpan.FromSeconds(1.5),
        SoakMoment.Streaming => TimeSpan.FromSeconds(1.5),
        _ => TimeSpan.FromSeconds(0.25),
    };

    private async Task<bool> StrikeAsync(string id, SoakFault fault, PhaseSignals phases, ContainerdEventLog events)
    {
        switch (fault)
        {
            case SoakFault.KillShim:
                return KillAll(ShimDaemons());
            case SoakFault.KillQemu:
                return KillAll(VmProcesses("qemu-system"));
            case SoakFault.KillVsockDaemon:
                return KillAll(VmProcesses("vhost-device-vsock"));
            case SoakFault.RestartContainerd:
                // the container's life waits (at its next ctr call) until the event stream is back: otherwise an exit
                // could come before `ctr events` listens again and look lost
                await _containerdRestarting.WaitAsync();
                try
                {
                    await Containerd.RestartAsync(TimeSpan.FromSeconds(60));
                    await events.RestartAsync();
                    phases.EndedBeforeContainerdServedAgain = await TaskStatusAsync(id) != "RUNNING";
                }
                finally
                {
                    _containerdRestarting.Release();
                }
                return true;
            case SoakFault.GuestPanic:
                return await PanicGuestAsync();
            case SoakFault.GuestFrozen:
                return await FreezeGuestAsync();
            default:
                throw new ArgumentOutOfRangeException(nameof(fault));
        }
    }

    /// <summary>The shim daemons of the soak's containerd: not a `start` or `delete` invocation of the shim binary, which
    /// containerd runs and waits for (killing containerd's cleanup is not a fault this soak makes).</summary>
    private IReadOnlyList<int> ShimDaemons() => Containerd.LeftoverShimProcesses().Where(pid =>
    {
        try
        {
            string last = File.ReadAllText($"/proc/{pid}/cmdline").TrimEnd('\0').Split('\0')[^1];
            return last is not ("start" or "delete");
        }
        catch (IOException)
        {
            return false; // gone meanwhile
        }
    }).ToArray();

    private IReadOnlyList<int> VmProcesses(string name) =>
        LeftoverVmProcesses.Find(_fixture.StateRoot).Where(p => p.CommandLine.Contains(name, StringComparison.Ordinal)).Select(p => p.Pid).ToArray();

    private static bool KillAll(IReadOnlyList<int> pids)
    {
        foreach (int pid in pids)
            Tmds.Linux.LibC.kill(pid, Tmds.Linux.LibC.SIGKILL);
        return pids.Count > 0;
    }

    /// <summary>sysrq "c" from a process exec'd into the (privileged) container: the guest kernel crashes.</summary>
    private async Task<bool> PanicGuestAsync()
    {
        foreach (string task in (await Containerd.CtrAsync(["task", "ls", "-q"], TimeSpan.FromSeconds(60))).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            // the exec never answers when it works: bounded, and not waited for
            _ = Containerd.CtrAsync(["task", "exec", "--exec-id", "panic", task, "sh", "-c", "echo c > /proc/sysrq-trigger"], TimeSpan.FromSeconds(60))
                .ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
            return true;
        }
        return false;
    }

    /// <summary>QMP `stop` on every running VM of the soak: the vCPUs stop, QEMU and its devices stay.</summary>
    private async Task<bool> FreezeGuestAsync()
    {
        bool any = false;
        foreach (string qmpSocket in Directory.Exists(_fixture.StateRoot)
                     ? Directory.GetFiles(_fixture.StateRoot, "qmp.sock", SearchOption.AllDirectories) : [])
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                await using var qmp = await QmpClient.ConnectAsync(qmpSocket, timeout.Token);
                (await qmp.ExecuteAsync("stop", timeout.Token)).Dispose();
                any = true;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or QmpException or OperationCanceledException)
            {
                // the VM went meanwhile
            }
        }
        return any;
    }

    /// <summary>
    /// Every task that started has an exit event, with a status that a killed container gives. One exception: a task
    /// that was no longer running once a restarted containerd served again may have ended while containerd shut down.
    /// Its exit then went to the dying containerd, which did not pass it on, and the new one does not publish it
    /// (containerd 2.x even reaps such a shim as leaked: "cleaning leaked shim process"); runc's tasks lose it the same
    /// way. An exit before the restart shows as usual, so this excuses only the restart's own window.
    /// </summary>
    private static List<string> LostExits(string id, IReadOnlyList<TaskEvent> events, bool endedBeforeContainerdServedAgain)
    {
        var lost = new List<string>();
        bool started = events.Any(e => e.Topic == "/tasks/start" && e.ProcessId == id);
        var exits = events.Where(e => e.Topic == "/tasks/exit" && e.ProcessId == id).ToArray();
        if (started && exits.Length == 0 && !endedBeforeContainerdServedAgain)
            lost.Add($"task {id} started but no /tasks/exit was published");
        foreach (var exit in exits.Where(e => e.ExitStatus is not (137 or 255)))
            lost.Add($"task {id} exited with status {exit.ExitStatus}, not 137 (SIGKILL) nor 255 (its shim died)");
        return lost;
    }

    /// <summary>
    /// Whether `sandboxctl list` and `gc --dry-run` agree on what the cycle left: the sandboxes list calls dead are
    /// exactly those gc would remove, and every VM process left belongs to a sandbox list calls live or starting, or is
    /// one gc would kill. After a clean cycle both see nothing.
    /// </summary>
    private async Task<List<string>> SandboxctlDisagreementsAsync()
    {
        var problems = new List<string>();
        var listed = ListCommand.Read(_fixture.StateRoot);
        var plan = await GcCommand.RunAsync(_fixture.StateRoot, dryRun: true, CancellationToken.None);
        var listedDead = listed.Where(l => l.State == "dead").Select(l => l.StateDirectory).Order().ToList();
        var gcWouldRemove = plan.Sandboxes.Select(s => s.StateDirectory).Order().ToList();
        if (!listedDead.SequenceEqual(gcWouldRemove))
            problems.Add($"list calls [{string.Join(", ", listedDead)}] dead, gc would remove [{string.Join(", ", gcWouldRemove)}]");
        foreach (var process in LeftoverVmProcesses.Find(_fixture.StateRoot))
        {
            string? directory = LeftoverScan.StateDirectoryNamedBy(process.CommandLine, _fixture.StateRoot);
            bool ofLiveSandbox = listed.Any(l => l.StateDirectory == directory && l.State != "dead");
            bool gcFindsIt = plan.Sandboxes.Any(s => s.Processes.Any(p => p.Pid == process.Pid)) || plan.Orphans.Any(o => o.Pid == process.Pid);
            if (!ofLiveSandbox && !gcFindsIt)
                problems.Add($"VM process {process.Pid} belongs to no live sandbox and gc would not remove it: {process.CommandLine}");
        }
        return problems;
    }

    /// <summary>What is left of the cycle once things had up to 15 s to go away.</summary>
    private async Task<List<string>> LeaksAfterSettlingAsync(string id)
    {
        var leaks = Leaks(id);
        for (int i = 0; i < 150 && leaks.Count > 0; i++)
        {
            await Task.Delay(100);
            leaks = Leaks(id);
        }
        return leaks;
    }

    private List<string> Leaks(string id)
    {
        var leaks = new List<string>();
        leaks.AddRange(Containerd.LeftoverShimProcesses().Select(pid => $"shim process {pid}"));
        leaks.AddRange(Containerd.LeftoverShimSockets().Select(s => $"shim socket {s}"));
        leaks.AddRange(LeftoverVmProcesses.Find(_fixture.StateRoot).Select(p => $"VM process {p.Pid} ({p.CommandLine})"));
        leaks.AddRange(VmBackedContainerdFixture.MountPointsBelow(Containerd.Directory).Select(m => $"mount {m}"));
        leaks.AddRange(VmBackedContainerdFixture.MountPointsBelow(_fixture.StateRoot).Select(m => $"mount {m}"));
        if (Directory.Exists(_fixture.StateRoot))
            leaks.AddRange(Directory.GetFileSystemEntries(_fixture.StateRoot)
                .Where(e => Path.GetFileName(e) != PostMortemStore.DirectoryName) // the records of ended sandboxes stay, bounded
                .Select(e => $"sandbox state {e}"));
        string taskDirectory = Path.Combine(Containerd.StateDirectory, "io.containerd.runtime.v2.task", "default", id);
        if (Directory.Exists(taskDirectory))
            leaks.Add($"containerd task directory {taskDirectory}");
        leaks.AddRange(HostCgroupMounts.Read().Select(h => Path.Combine(h.MountPoint, "default", id)).Where(Directory.Exists)
            .Select(c => $"host cgroup {c}"));
        return leaks;
    }

    /// <summary>Which phase of the container's life is running, for the fault to wait on.</summary>
    private sealed class PhaseSignals
    {
        private readonly Dictionary<SoakMoment, TaskCompletionSource<DateTime>> _begun =
            Enum.GetValues<SoakMoment>().ToDictionary(m => m, _ => new TaskCompletionSource<DateTime>(TaskCreationOptions.RunContinuationsAsynchronously));
        private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private volatile bool _struck;

        public Task Ended => _ended.Task;

        /// <summary>The task was not running once a restarted containerd served again.</summary>
        public bool EndedBeforeContainerdServedAgain { get; set; }

        /// <summary>True once the fault is about to strike (or has).</summary>
        public bool Struck => _struck;

        public void Strike() => _struck = true;

        public void Begin(SoakMoment moment) => _begun[moment].TrySetResult(DateTime.UtcNow);

        /// <summary>When the life ends before the phase (a fault can cut it short), the end counts as its start.</summary>
        public void End()
        {
            foreach (var begun in _begun.Values)
                begun.TrySetResult(DateTime.UtcNow);
            _ended.TrySetResult();
        }

        public Task<DateTime> WaitForAsync(SoakMoment moment) => _begun[moment].Task;
    }
}
