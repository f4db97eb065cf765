using System.Diagnostics;
using Sandbox.Native;

namespace Sandbox.Hypervisors.Processes;

/// <summary>
/// One long-lived child process (QEMU, vhost-device-vsock) that this process owns: started with a closed stdin and
/// no_new_privs, its stdout and stderr kept as a bounded tail, its exit observable by any number of waiters, and
/// stopped with SIGTERM then SIGKILL. Its lifetime is not tied to any CancellationToken; only <see cref="TerminateAsync"/>,
/// <see cref="Kill"/> and <see cref="Dispose"/> end it.
/// </summary>
public sealed class SupervisedProcess : IDisposable
{
    private readonly Process _process;
    private readonly OutputTail _output;

    private readonly TimestampedLogFile? _outputLog;

    private SupervisedProcess(string name, Process process, OutputTail output, TimestampedLogFile? outputLog)
    {
        _outputLog = outputLog;
        Name = name;
        _process = process;
        _output = output;
        Pid = process.Id;
        Exited = WatchExitAsync();
    }

    /// <summary>Short name for messages ("QEMU", "vhost-device-vsock").</summary>
    public string Name { get; }
    public int Pid { get; }
    /// <summary>Completes with the exit code (128+signal when killed by a signal) when the process ends. Never faults.</summary>
    public Task<int> Exited { get; }
    public DateTimeOffset? ExitedAt { get; private set; }
    public bool HasExited => Exited.IsCompleted;
    /// <summary>The last lines of stderr and stdout, interleaved as they arrived.</summary>
    public string OutputTail => _output.ToString();

    /// <summary>Starts <paramref name="path"/>; every line it writes also goes to <paramref name="outputLog"/> with its
    /// time, when given. Throws <see cref="System.ComponentModel.Win32Exception"/> when the binary cannot be executed.</summary>
    public static SupervisedProcess Start(string name, string path, IReadOnlyList<string> args, string? workingDirectory = null,
        string? outputLog = null)
    {
        var startInfo = new ProcessStartInfo(path)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? "/",
        };
        foreach (var arg in args)
            startInfo.ArgumentList.Add(arg);
        var output = new OutputTail();
        var log = outputLog is null ? null : new TimestampedLogFile(outputLog);
        var process = new Process { StartInfo = startInfo };
        process.ErrorDataReceived += (_, e) => Record(output, log, e.Data);
        process.OutputDataReceived += (_, e) => Record(output, log, e.Data);
        // no_new_privs belongs to a thread and passes to what the thread starts (Process.Start forks on it): set just
        // before the fork, it keeps QEMU and its helpers from ever gaining privileges by executing a setuid or
        // file-capability program. It also stays on this thread, whose later children can only be more of the same.
        if (LibCSupplement.prctl(LibCSupplement.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            throw new InvalidOperationException($"cannot start {name}: prctl(PR_SET_NO_NEW_PRIVS) failed: {Errno.DescribeLast()}");
        process.Start();
        // Reading starts before the exit watcher exists: a process that dies at once (a daemon refusing its arguments)
        // must not be disposed by the watcher before its output is read, or the error it printed is lost.
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        process.StandardInput.Close();
        return new SupervisedProcess(name, process, output, log);
    }

    private static void Record(OutputTail output, TimestampedLogFile? log, string? line)
    {
        output.Add(line);
        if (line is not null)
            log?.Append(line);
    }

    private async Task<int> WatchExitAsync()
    {
        await _process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        ExitedAt = DateTimeOffset.UtcNow;
        var exitCode = _process.ExitCode;
        _outputLog?.Append(exitCode > 128 ? $"({Name} was killed by signal {exitCode - 128})" : $"({Name} exited with code {exitCode})");
        _outputLog?.Dispose();
        _process.Dispose();
        return exitCode;
    }

    /// <summary>SIGTERM, then SIGKILL if it has not exited after <paramref name="grace"/> (or at once when
    /// <paramref name="cancellationToken"/> fires). Returns once the process has exited; always ends it.</summary>
    public async Task TerminateAsync(TimeSpan grace, CancellationToken cancellationToken)
    {
        if (HasExited)
            return;
        PosixSignal.Send(Pid, PosixSignal.SigTerm);
        await WaitAsync(grace, cancellationToken).ConfigureAwait(false);
        if (!HasExited)
            Kill();
        await Exited.ConfigureAwait(false);
    }

    /// <summary>Waits up to <paramref name="timeout"/> for the exit; returns whether it exited. Cancellation ends the
    /// wait early without throwing.</summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await Exited.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
        catch (OperationCanceledException)
        {
        }
        return HasExited;
    }

    /// <summary>SIGKILL, without waiting.</summary>
    public void Kill()
    {
        if (HasExited)
            return;
        try
        {
            _process.Kill();
        }
        catch (InvalidOperationException)
        {
            // Exited (and was disposed) meanwhile.
        }
    }

    /// <summary>Kills the process if it still runs; the handle is released once its exit is observed.</summary>
    public void Dispose() => Kill();
}
