using System.Globalization;
using System.Text.RegularExpressions;
using Sandbox.Runtime.PostMortem;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl.Doctor;

public enum Verdict
{
    /// <summary>Running and answering, or ended without a fault: exit 0.</summary>
    Healthy,
    /// <summary>A fault was found: exit 1.</summary>
    Problem,
}

/// <summary>What `doctor` concludes: the cause and the fix (its first line), and the evidence for it.</summary>
public sealed record Diagnosis(Verdict Verdict, string Cause, string Fix, IReadOnlyList<EvidenceLine> Evidence);

/// <summary>
/// The rules of `sandboxctl doctor`, over <see cref="SandboxEvidence"/> alone (no I/O), first match wins:
/// a failed boot (missing or unloadable kernel/initrd, the host lacking KVM or vsock, a guest kernel panic, an agent
/// that never answered); a VM that died (QEMU killed or crashed, the vsock daemon dead, a hung guest given up, the
/// host's OOM killer); a container that could not start (its executable missing from the image); a container
/// OOM-killed (with its limit); a dead shim's leftovers; else healthy (or ended without a fault).
/// </summary>
public static partial class SandboxDiagnosis
{
    public static Diagnosis Diagnose(SandboxEvidence e)
    {
        if (e.PostMortem is { Failed: true } failedRecord && failedRecord.Reason.StartsWith(PostMortemRecord.BootFailedPrefix, StringComparison.Ordinal))
            return BootFailure(e, failedRecord.Error ?? failedRecord.Reason);
        if (e.Events.LastOrDefault(x => x.Kind == SandboxEvent.VmExit) is { } vmExit)
            return VmLost(e, vmExit);
        if (e.Events.LastOrDefault(x => x.Kind == SandboxEvent.ContainerFailed) is { } failed)
            return ContainerFailure(e, failed);
        if (e.Events.LastOrDefault(x => x.Kind == SandboxEvent.ContainerExit && x.OomKilled) is { } oom)
            return OomKill(e, oom);
        if (e.PostMortem is { Failed: true } record)
            return Problem($"it ended by a failure: {record.Reason}", "read the shim's last lines below", e,
                [new EvidenceLine(e.Where, "reason: " + record.Reason)], e.Shim, 8);
        if (e.PostMortem is { } ended)
            return Ended(e, ended);
        return Live(e);
    }

    // ---------------------------------------------------------------------------------------------------------

    private static Diagnosis BootFailure(SandboxEvidence e, string error)
    {
        var errorLine = new EvidenceLine(e.Where, "error: " + FirstLine(error));
        if (MissingGuestFile().Match(error) is { Success: true } missing)
        {
            string what = missing.Groups["what"].Value == "guest image file"
                ? missing.Groups["key"].Value == "initrd" ? "guest initramfs" : "guest kernel"
                : missing.Groups["what"].Value;
            return Problem($"the VM could not boot: the {what} {missing.Groups["path"].Value} does not exist",
                $"build the guest image (`make image`, or `make install`), or correct [hypervisor.qemu] {(what.Contains("kernel") ? "kernel" : "initrd")} in the configuration",
                e, [errorLine]);
        }
        if (error.Contains("guest kernel and initramfs not found", StringComparison.Ordinal))
            return Problem("the VM could not boot: no guest kernel and initramfs were found",
                "build them with `make image` or install them with `make install` (or set SANDBOX_GUEST_DIR)", e, [errorLine]);
        if (error.Contains("KVM was requested but cannot be used", StringComparison.Ordinal))
            return Problem("the VM could not boot: the host lacks KVM, which the configuration requires (accel = \"kvm\")",
                "set [hypervisor.qemu] accel = \"auto\" (TCG where KVM is missing), or give the host a usable /dev/kvm; `sandboxctl check` shows the host's facts",
                e, [errorLine, .. HostLines(e)]);
        if (error.Contains("no host<->guest vsock", StringComparison.Ordinal))
            return Problem("the VM could not boot: the host has no vsock (neither /dev/vhost-vsock nor vhost-device-vsock)",
                "load the vhost_vsock module or install vhost-device-vsock; `sandboxctl check` shows the host's facts", e, [errorLine, .. HostLines(e)]);
        if (error.Contains("/dev/net/tun", StringComparison.Ordinal) || error.Contains("tuntap", StringComparison.Ordinal))
            return Problem("the VM could not boot: the host cannot create the pod's tap device (/dev/net/tun)",
                "load the tun module (`modprobe tun`); `sandboxctl check` shows the host's facts", e, [errorLine, .. HostLines(e)]);
        if (FindLine(e.Qemu, QemuLoadError()) is { } load)
        {
            string file = load.Text.Contains("initrd", StringComparison.OrdinalIgnoreCase) ? $"initrd {e.Metadata?.InitrdPath}" : $"kernel {e.Metadata?.KernelPath}";
            return Problem($"the VM could not boot: QEMU could not load the guest {file}: {StripStamp(load.Text)}",
                "the file is corrupt or not a PVH vmlinux/cpio: rebuild the guest image (`make image`) or point the configuration at a good one",
                e, [errorLine, load], e.Qemu, 3);
        }
        if (FindLine(e.Console, KernelPanic()) is { } panic)
            return Panic(e, panic, booting: true, errorLine);
        if (error.Contains("before its agent answered", StringComparison.Ordinal))
            return Problem($"the VM could not boot: QEMU exited before the agent answered: {LastLine(e.Qemu) ?? FirstLine(error)}",
                "read QEMU's and the console's last lines below", e, [errorLine], e.Qemu, 5);
        if (error.Contains("agent did not start", StringComparison.Ordinal) || error.Contains("within", StringComparison.Ordinal) && error.Contains("agent", StringComparison.Ordinal))
        {
            string stall = error.Split('\n').FirstOrDefault(l => l.StartsWith("Boot diagnosis:", StringComparison.Ordinal)) ?? "";
            return Problem($"the VM booted but its agent never answered (the guest hung before the agent started, within {ReadyTimeoutOf(error)})",
                "read the console's last lines below: the guest stopped there. If the host is overloaded, raise [agent] ready_timeout or start fewer pods at once",
                e, stall.Length > 0 ? [errorLine, new EvidenceLine(e.Where, stall)] : [errorLine], e.Console, 8);
        }
        return Problem($"the VM could not boot: {FirstLine(error)}", "read the evidence below; `sandboxctl check` shows the host's facts", e,
            [errorLine, .. HostLines(e)], e.Qemu, 3);
    }

    private static Diagnosis VmLost(SandboxEvidence e, SandboxEvent exit)
    {
        var line = new EvidenceLine(e.EventsSource, $"{Stamp(exit.Time)} VM exited, QEMU exit code {exit.ExitStatus}: {FirstLine(exit.Message)}");
        string message = exit.Message;
        if (message.StartsWith("vhost-device-vsock", StringComparison.Ordinal))
            return Problem($"the vsock daemon died: {FirstSentence(message)}; the VM was stopped, so every container was reported killed",
                "the pod has to be recreated; find out what killed vhost-device-vsock (the host's OOM killer in `dmesg`, an operator)",
                e, [line], e.VsockDaemon, 3);
        if (message.Contains("answered no Health check", StringComparison.Ordinal))
            return Problem("the guest stopped answering (a frozen vCPU or a wedged kernel) and the runtime stopped its VM",
                "read the console's last lines below; if the host was overloaded, raise [agent] liveness_timeout", e, [line], e.Console, 8);
        if (message.Contains("OOM killer", StringComparison.Ordinal))
            return Problem($"the host's OOM killer killed QEMU: {FirstSentence(message)}",
                "raise the pod's memory limit or [hypervisor.qemu] host_memory_overhead", e, [line]);
        if (FindLine(e.Console, KernelPanic()) is { } panic)
            return Panic(e, panic, booting: false, line);
        if (QemuEnded().Match(message) is { Success: true } ended)
        {
            string pid = ended.Groups["pid"].Value;
            if (ended.Groups["signal"].Success)
                return Problem($"QEMU (pid {pid}) was killed by signal {ended.Groups["signal"].Value}, not by the runtime; the VM and every container in it are gone",
                    "find out what killed it (the host's OOM killer in `dmesg`, an operator, a script); the pod has to be recreated",
                    e, [line], e.Qemu, 3);
            return Problem($"QEMU (pid {pid}) died with exit code {ended.Groups["code"].Value}: {LastLine(e.Qemu, skipExitNote: true) ?? "it printed nothing"}",
                "read QEMU's last lines below", e, [line], e.Qemu, 5);
        }
        return Problem($"the VM exited unexpectedly: {FirstSentence(message)}", "read the evidence below", e, [line], e.Qemu, 3);
    }

    private static Diagnosis Panic(SandboxEvidence e, EvidenceLine panic, bool booting, EvidenceLine first)
    {
        bool noRoot = e.Console.Lines.Any(l => l.Contains("Initramfs unpacking failed", StringComparison.Ordinal) ||
                                               l.Contains("Unable to mount root fs", StringComparison.Ordinal) ||
                                               l.Contains("No working init found", StringComparison.Ordinal));
        string fix = noRoot
            ? $"the initramfs {e.Metadata?.InitrdPath} is corrupt or has no init: rebuild the guest image (`make image`)"
            : "read the console's last lines below; if it follows a change of kernel, go back to the stock one ([hypervisor.qemu] kernel)";
        // the lines that say why, not the call trace after them
        var why = e.Console.Lines.Where(l => l.Contains("Initramfs unpacking failed", StringComparison.Ordinal) ||
                                             l.Contains("Run /", StringComparison.Ordinal) || l.Contains("Failed to execute", StringComparison.Ordinal))
            .Select(l => new EvidenceLine(e.Console.Source, l));
        return Problem($"the guest kernel panicked{(booting ? " while booting" : "")}: {GuestText(panic.Text)}", fix, e, [first, .. why, panic]);
    }

    private static Diagnosis ContainerFailure(SandboxEvidence e, SandboxEvent failed)
    {
        var line = new EvidenceLine(e.EventsSource, $"{Stamp(failed.Time)} container {failed.ContainerId} failed: {FirstLine(failed.Message)}");
        if (MissingExecutable().Match(failed.Message) is { Success: true } missing)
            return Problem($"container {failed.ContainerId} could not start: its executable {missing.Groups["path"].Value} does not exist in the image",
                "correct the command or entrypoint of the container (or the image); `ctr run IMAGE ID ls /path` shows what the image holds",
                e, [line]);
        return Problem($"container {failed.ContainerId} could not be created or started: {FirstLine(failed.Message)}",
            "read the error below", e, [line]);
    }

    private static Diagnosis OomKill(SandboxEvidence e, SandboxEvent oom)
    {
        string limit = oom.MemoryLimitBytes is { } bytes ? $"memory limit {Mebibytes(bytes)}" : "no memory limit of its own: the VM's memory ran out";
        var line = new EvidenceLine(e.EventsSource, $"{Stamp(oom.Time)} container {oom.ContainerId} exited with status {oom.ExitStatus}, OOM-killed, {limit}");
        var kernel = e.Console.Lines.Where(l => l.Contains("Memory cgroup out of memory", StringComparison.Ordinal) || l.Contains("oom-kill", StringComparison.Ordinal))
            .TakeLast(2).Select(l => new EvidenceLine(e.Console.Source, l.Trim()));
        return Problem($"container {oom.ContainerId} was OOM-killed ({limit})",
            oom.MemoryLimitBytes is null ? "give the pod more memory, or make the container use less"
                : "raise its memory limit (resources.limits.memory, `ctr run --memory-limit`), or make it use less",
            e, [line, .. kernel]);
    }

    private static Diagnosis Ended(SandboxEvidence e, PostMortemRecord record)
    {
        var exits = e.Events.Where(x => x.Kind == SandboxEvent.ContainerExit)
            .Select(x => new EvidenceLine(e.EventsSource, $"{Stamp(x.Time)} container {x.ContainerId} exited with status {x.ExitStatus}"));
        return new Diagnosis(Verdict.Healthy, $"no fault found: it ended at {Stamp(record.EndedAt)} ({record.Reason})", "nothing to fix",
            [new EvidenceLine(e.Where, "reason: " + record.Reason), .. exits]);
    }

    private static Diagnosis Live(SandboxEvidence e)
    {
        var metadata = e.Metadata;
        if (e.Liveness == "dead")
            return Problem($"its shim daemon{(e.ShimPid is { } pid ? $" (pid {pid.ToString(CultureInfo.InvariantCulture)})" : "")} is gone; what it left runs or lies on the host",
                "`sandboxctl gc` removes the leftovers (and keeps a post-mortem record of them)", e, [new EvidenceLine(e.Where, "owner: shim.pid names no running process")], e.Shim, 5);
        if (e.Liveness == "starting")
            return new Diagnosis(Verdict.Healthy, "starting: its VM is booting", "nothing to fix yet; ask again in a few seconds", Tail(e.Shim, 3).ToList());
        if (!e.VmmRunning)
            return Problem($"its VM is not running (QEMU pid {metadata?.VmmPid?.ToString(CultureInfo.InvariantCulture) ?? "unknown"} is gone) but its shim still runs",
                "the shim reports the exit and stops the sandbox; if it stays, delete the pod", e, [], e.Shim, 5);
        if (e.Guest is null)
            return Problem($"its agent does not answer: {e.AgentError}", "read the console's last lines below; the shim gives a hung guest up after [agent] liveness_timeout",
                e, [], e.Console, 5);
        var up = metadata is null ? "" : $"up {Duration(e.Now - metadata.CreatedAt)}, ";
        string vm = metadata is null ? "" : $"VM: QEMU pid {metadata.VmmPid} ({metadata.Acceleration}, {metadata.VsockMode} vsock, {metadata.Vcpus} vCPU, {metadata.MemoryMiB} MiB), ";
        string containers = e.Containers.Count == 0 ? "no containers" : $"containers: {string.Join(", ", e.Containers)}";
        var evidence = new List<EvidenceLine>
        {
            new(e.Where, $"agent answered: guest kernel {e.Guest.KernelRelease}, uptime {e.Guest.UptimeSeconds:0} s (guest clock), " +
                         $"memory {Mebibytes((long)(e.Guest.MemTotalBytes - e.Guest.MemAvailableBytes))} used of {Mebibytes((long)e.Guest.MemTotalBytes)}"),
        };
        evidence.AddRange(e.Events.Where(x => x.Kind == SandboxEvent.ContainerExit)
            .Select(x => new EvidenceLine(e.EventsSource, $"{Stamp(x.Time)} container {x.ContainerId} exited with status {x.ExitStatus}")));
        return new Diagnosis(Verdict.Healthy, $"healthy: {up}{vm}{containers}", "nothing to fix", evidence);
    }

    // ---------------------------------------------------------------------------------------------------------

    private static Diagnosis Problem(string cause, string fix, SandboxEvidence e, IEnumerable<EvidenceLine> evidence, LogTail? tail = null, int tailLines = 0) =>
        new(Verdict.Problem, cause, fix, evidence.Concat(tail is null ? [] : Tail(tail, tailLines)).Distinct().ToList());

    private static IEnumerable<EvidenceLine> Tail(LogTail log, int lines) =>
        log.Lines.Where(l => l.Trim().Length > 0).TakeLast(lines).Select(l => new EvidenceLine(log.Source, l));

    private static IEnumerable<EvidenceLine> HostLines(SandboxEvidence e) =>
        e.HostProblems.Select(p => new EvidenceLine("sandboxctl check", $"{(p.Required ? "FAIL" : "warn")} {p.Name}: {p.Detail}"));

    private static EvidenceLine? FindLine(LogTail log, Regex pattern) =>
        log.Lines.LastOrDefault(pattern.IsMatch) is { } line ? new EvidenceLine(log.Source, line) : null;

    private static string? LastLine(LogTail log, bool skipExitNote = false) =>
        log.Lines.Select(StripStamp).LastOrDefault(l => l.Trim().Length > 0 && !(skipExitNote && l.StartsWith('(')));

    /// <summary>A line of a <see cref="Sandbox.Hypervisors.Processes.TimestampedLogFile"/> without its time.</summary>
    private static string StripStamp(string line) =>
        Sandbox.Hypervisors.Processes.TimestampedLogFile.TimeOf(line) is null ? line : line[(Sandbox.Hypervisors.Processes.TimestampedLogFile.StampLength + 1)..];

    /// <summary>A console line without the guest's "[   1.234567] " stamp.</summary>
    private static string GuestText(string line) => GuestStamp().Replace(line, "").Trim();

    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();

    private static string FirstSentence(string text)
    {
        string first = FirstLine(text);
        int end = first.IndexOf("; ", StringComparison.Ordinal);
        return end > 0 ? first[..end] : first.TrimEnd('.');
    }

    private static string ReadyTimeoutOf(string error) =>
        WithinSeconds().Match(error) is { Success: true } m ? $"{m.Groups[1].Value} s" : "[agent] ready_timeout";

    private static string Stamp(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Mebibytes(long bytes) => $"{bytes / (1024.0 * 1024):0.#} MiB";

    private static string Duration(TimeSpan span) =>
        span.TotalHours >= 1 ? $"{(int)span.TotalHours}h{span.Minutes:00}m" : span.TotalMinutes >= 1 ? $"{(int)span.TotalMinutes}m{span.Seconds:00}s" : $"{span.TotalSeconds:0}s";

    [GeneratedRegex(@"(?<what>guest kernel|guest initrd|guest initramfs|initrd|initramfs|guest image file) (?<path>/\S+) does not exist(?: \(key hypervisor\.qemu\.(?<key>kernel|initrd))?")]
    private static partial Regex MissingGuestFile();

    [GeneratedRegex(@"could not load|Error loading|not a PVH|linux kernel too old|initrd .*(too large|failed)|Could not open option rom|PVH ELF", RegexOptions.IgnoreCase)]
    private static partial Regex QemuLoadError();

    [GeneratedRegex(@"Kernel panic - not syncing")]
    private static partial Regex KernelPanic();

    [GeneratedRegex(@"QEMU \(pid (?<pid>\d+)\) (was killed by signal (?<signal>\d+)|exited with code (?<code>-?\d+))")]
    private static partial Regex QemuEnded();

    /// <summary>crun's and the agent's ways of saying an executable is missing: executable file `/x` not found,
    /// exec: "/x": stat /x: no such file or directory, execvp `/x`: No such file or directory.</summary>
    [GeneratedRegex("""[`'"](?<path>[^`'"\s]+)[`'"][^\n]*?(not found|[Nn]o such file)""")]
    private static partial Regex MissingExecutable();

    [GeneratedRegex(@"^\[\s*\d+\.\d+\]\s?")]
    private static partial Regex GuestStamp();

    [GeneratedRegex(@"within (\d+(?:\.\d+)?) s")]
    private static partial Regex WithinSeconds();
}
