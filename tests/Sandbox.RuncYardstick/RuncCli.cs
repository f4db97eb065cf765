using System.Text.Json;
using System.Text;
using Sandbox.Native;
using Sandbox.Shim.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.RuncYardstick;

/// <summary>The outcome of one runc invocation.</summary>
internal sealed record RuncResult(uint ExitStatus, string Stdout, string Stderr, string? LoggedError)
{
    public bool Succeeded => ExitStatus == 0;

    /// <summary>The most telling error text runc produced.</summary>
    public string Error =>
        LoggedError ?? (Stderr.Trim() is { Length: > 0 } stderr ? stderr : $"runc exited with status {ExitStatus} and printed nothing");
}

/// <summary>
/// Runs the host's runc (<c>runc --root ROOT ...</c>) with posix_spawn and the shim's child reaper. Commands that
/// start container processes (create, exec) hand the container's stdio pipes to runc, and runc's own errors then go
/// to a JSON log file in the bundle; other commands have their stdout and stderr captured.
/// </summary>
internal sealed class RuncCli
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    public RuncCli(string runcPath, string root)
    {
        RuncPath = runcPath;
        Root = root;
    }

    public string RuncPath { get; }

    /// <summary>runc's state directory (--root), one per containerd namespace.</summary>
    public string Root { get; }

    /// <summary>SANDBOX_RUNC_BINARY, else runc on PATH; null when there is none.</summary>
    public static string? FindRunc()
    {
        if (Environment.GetEnvironmentVariable("SANDBOX_RUNC_BINARY") is { Length: > 0 } configured)
            return File.Exists(configured) ? configured : null;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").Split(':'))
        {
            if (dir.Length == 0)
                continue;
            var candidate = Path.Combine(dir, "runc");
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }

    /// <summary>Runs a command whose stdout and stderr are captured.</summary>
    public async Task<RuncResult> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        var (stdoutRead, stdoutWrite) = CreatePipe();
        var (stderrRead, stderrWrite) = CreatePipe();
        int pid;
        try
        {
            pid = ProcessSpawner.Spawn(new SpawnRequest
            {
                Path = RuncPath,
                Arguments = GlobalArguments(null).Concat(arguments).ToArray(),
                StdoutFd = stdoutWrite,
                StderrFd = stderrWrite,
            });
        }
        catch
        {
            close(stdoutRead);
            close(stderrRead);
            throw;
        }
        finally
        {
            close(stdoutWrite);
            close(stderrWrite);
        }

        var stdout = ReadToEndAsync(stdoutRead);
        var stderr = ReadToEndAsync(stderrRead);
        uint status = await WaitAsync(pid, arguments, timeout, cancellationToken).ConfigureAwait(false);
        return new RuncResult(status, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false), null);
    }

    /// <summary>
    /// Runs a command that starts a container process with <paramref name="stdio"/> as its stdio; runc's own
    /// errors are read back from <paramref name="logFile"/>.
    /// </summary>
    public async Task<RuncResult> RunWithStdioAsync(IReadOnlyList<string> arguments, StdioRelay stdio, string logFile,
        CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        long logStart = File.Exists(logFile) ? new FileInfo(logFile).Length : 0;
        int pid = ProcessSpawner.Spawn(new SpawnRequest
        {
            Path = RuncPath,
            Arguments = GlobalArguments(logFile).Concat(arguments).ToArray(),
            StdinFd = stdio.ChildStdin,
            StdoutFd = stdio.ChildStdout,
            StderrFd = stdio.ChildStderr,
        });
        uint status = await WaitAsync(pid, arguments, timeout, cancellationToken).ConfigureAwait(false);
        return new RuncResult(status, "", "", status == 0 ? null : LastLoggedError(logFile, logStart));
    }

    private IEnumerable<string> GlobalArguments(string? logFile)
    {
        yield return "--root";
        yield return Root;
        if (logFile is not null)
        {
            yield return "--log";
            yield return logFile;
            yield return "--log-format";
            yield return "json";
        }
    }

    private async Task<uint> WaitAsync(int pid, IReadOnlyList<string> arguments, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var exit = ChildProcessReaper.Shared.WaitForExitAsync(pid);
        try
        {
            return await exit.WaitAsync(timeout ?? DefaultTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            kill(pid, SIGKILL);
            await exit.ConfigureAwait(false);
            if (e is TimeoutException)
                throw new TimeoutException($"runc {string.Join(' ', arguments)} did not finish within {(timeout ?? DefaultTimeout).TotalSeconds} s and was killed");
            throw;
        }
    }

    private static string? LastLoggedError(string logFile, long from)
    {
        try
        {
            using var stream = File.OpenRead(logFile);
            stream.Seek(from, SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            string? lastError = null;
            while (reader.ReadLine() is { } line)
            {
                try
                {
                    using var entry = JsonDocument.Parse(line);
                    if (entry.RootElement.TryGetProperty("level", out var level) && level.GetString() is "error" or "fatal"
                        && entry.RootElement.TryGetProperty("msg", out var msg))
                    {
                        lastError = msg.GetString();
                    }
                }
                catch (JsonException)
                {
                    lastError = line;
                }
            }
            return lastError;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static unsafe (int Read, int Write) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
            throw new IOException($"cannot create a pipe for runc: {Errno.DescribeLast()}");
        return (fds[0], fds[1]);
    }

    private static unsafe Task<string> ReadToEndAsync(int fd) =>
        Task.Factory.StartNew(() =>
        {
            var output = new MemoryStream();
            var buffer = new byte[8192];
            try
            {
                fixed (byte* p = buffer)
                {
                    while (true)
                    {
                        long n = read(fd, p, buffer.Length);
                        if (n > 0)
                        {
                            output.Write(buffer, 0, (int)n);
                            continue;
                        }
                        if (n < 0 && Errno.Last == EINTR)
                            continue;
                        break;
                    }
                }
            }
            finally
            {
                close(fd);
            }
            return Encoding.UTF8.GetString(output.ToArray());
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
}
