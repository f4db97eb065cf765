using System.Net.Sockets;
using Grpc.Core;
using Microsoft.Win32.SafeHandles;
using Sandbox.Native;
using Sandbox.Runtime.Agent;
using Sandbox.Shim.Backend;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Vm;

/// <summary>
/// Connects containerd's stdio of one process (FIFOs, files or a logging binary: <see cref="ContainerdOutputs"/>)
/// with the process's stdio in the guest (<see cref="GuestProcessStdio"/>: the agent's ReadStdout/ReadStderr streams
/// and its WriteStdin stream).
/// Output: each guest stream is copied to its destination until the guest reaches end of file; once containerd's
/// reader has taken everything (<see cref="ContainerdFifoDrain"/>) the destination is closed (the client sees end of
/// file). A stream containerd did not ask for is still read (to nowhere), so that
/// the process never blocks on a full pipe. With a terminal, all output is on stdout.
/// Input: a <see cref="ContainerdStdinPump"/> copies the stdin FIFO into one end of a socket pair; the other end is
/// the source of the WriteStdin stream, which completes (the guest process's stdin closes) once the pump stops, i.e.
/// after containerd's CloseIO and the FIFO drained.
/// </summary>
internal sealed class GuestStdioBridge : IDisposable
{
    private readonly string _owner;
    private readonly Action<string> _log;
    private readonly CancellationTokenSource _stop = new();
    private CancellationTokenSource? _copies;
    private OutputDestination? _stdout;
    private OutputDestination? _stderr;
    private LoggingBinary? _logger;
    private int _stdinSource = -1;
    private ContainerdStdinPump? _stdinPump;
    private Task _stdoutCopy = Task.CompletedTask;
    private Task _stderrCopy = Task.CompletedTask;
    private bool _started;
    private int _disposed;

    private GuestStdioBridge(string owner, bool terminal, Action<string> log)
    {
        _owner = owner;
        Terminal = terminal;
        _log = log;
    }

    public bool Terminal { get; }

    /// <summary>Whether containerd gave a stdin: the guest process must be created with one.</summary>
    public bool HasStdin => _stdinSource >= 0;

    /// <summary>
    /// Completes when both output streams reached end of file (or failed), containerd's reader took the output (or
    /// stopped reading), and the destinations are closed.
    /// </summary>
    public Task OutputCompleted => _logger is null ? Task.WhenAll(_stdoutCopy, _stderrCopy) : Task.WhenAll(_stdoutCopy, _stderrCopy, _logger.Exited);

    /// <summary>
    /// Opens containerd's destinations (or starts its logging binary), so that a bad path fails before anything runs
    /// in the guest. <paramref name="containerId"/> and <paramref name="containerdNamespace"/> are what a logging
    /// binary is told.
    /// </summary>
    public static GuestStdioBridge Open(ProcessStdio stdio, string containerId, string containerdNamespace, string owner, Action<string> log)
    {
        var bridge = new GuestStdioBridge(owner, stdio.Terminal, log);
        try
        {
            if (stdio.Stdin.Length > 0)
                bridge._stdinSource = ContainerdStdioDestination.OpenStdin(stdio.Stdin, owner);
            var outputs = ContainerdOutputs.Open(stdio, containerId, containerdNamespace, owner, log);
            (bridge._stdout, bridge._stderr, bridge._logger) = (outputs.Stdout, outputs.Stderr, outputs.Logger);
            return bridge;
        }
        catch
        {
            bridge.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts the copies once the process exists in the guest. Bytes the process writes before the readers attach
    /// wait in the guest's pipes. <paramref name="vmGone"/> ends every copy when the VM is lost or shut down.
    /// </summary>
    public unsafe void Start(GuestProcessStdio guest, CancellationToken vmGone)
    {
        _started = true;
        _copies = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, vmGone);
        var token = _copies.Token;
        _stdoutCopy = CopyOutputAsync("stdout", _stdout, (d, t, c) => guest.CopyStdoutToAsync(d, t, c), token);
        if (!Terminal)
            _stderrCopy = CopyOutputAsync("stderr", _stderr, (d, t, c) => guest.CopyStderrToAsync(d, t, c), token);
        if (_stdinSource < 0)
            return;

        int* ends = stackalloc int[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0)
        {
            _log($"{_owner}: stdin is not forwarded: socketpair failed: {Errno.DescribeLast()}");
            return;
        }
        int source = _stdinSource;
        _stdinSource = -1;
        _stdinPump = ContainerdStdinPump.Start(source, ends[0], _owner);
        var input = new NetworkStream(new Socket(new SafeSocketHandle(ends[1], ownsHandle: true)), ownsSocket: true);
        _ = CopyStdinAsync(guest, input, token);
    }

    /// <summary>containerd's CloseIO: what is still in the stdin FIFO is delivered, then the guest process's stdin closes.</summary>
    public void CloseStdin() => _stdinPump?.RequestClose();

    /// <summary>Stops every copy and closes containerd's destinations.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
            return;
        _stop.Cancel();
        _copies?.Dispose();
        _stdinPump?.Stop();
        if (_stdinSource >= 0)
            close(_stdinSource);
        _stdinSource = -1;
        if (!_started)
        {
            if (_stdout is { } stdout)
                close(stdout.Fd);
            if (_stderr is { } stderr)
                close(stderr.Fd);
        }
        _logger?.Release();
    }

    /// <summary>
    /// Copies one guest stream to its destination until the guest's end of file, waits until containerd's reader has
    /// taken everything (<see cref="ContainerdFifoDrain"/>: a client may stop reading as soon as it learns of the
    /// exit), then closes the destination.
    /// </summary>
    private async Task CopyOutputAsync(string stream, OutputDestination? destination,
        Func<Stream, CancellationToken, OutputCopyCounter, Task<long>> copy, CancellationToken cancellationToken)
    {
        var counter = new OutputCopyCounter();
        string end = "end of file";
        var output = destination is { } d ? OutputStream(d.Fd) : Stream.Null;
        try
        {
            await copy(output, cancellationToken, counter).ConfigureAwait(false);
            if (destination is { } written && await ContainerdFifoDrain.WaitUntilReadAsync(written, cancellationToken).ConfigureAwait(false) is { } problem)
                end = $"end of file; {problem}";
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException)
        {
            end = cancellationToken.IsCancellationRequested ? "stopped" : $"failed: {e.Message}";
            if (!cancellationToken.IsCancellationRequested)
                _log($"{_owner}: copying its {stream} from the guest stopped: {e.Message}");
        }
        finally
        {
            await output.DisposeAsync().ConfigureAwait(false);
            _log($"{_owner}: {stream}: {counter.Received} bytes from the guest, {counter.Written} written to " +
                 $"{(destination is null ? "nowhere (not requested)" : _logger is null ? "containerd's destination" : "the logging binary")} ({end})");
        }
    }

    private async Task CopyStdinAsync(GuestProcessStdio guest, NetworkStream input, CancellationToken cancellationToken)
    {
        try
        {
            await guest.WriteStdinFromAsync(input, cancellationToken).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
        {
            // the process exited or closed its stdin: what is left cannot be delivered, as with a pipe
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException or IOException or SocketException)
        {
            if (!cancellationToken.IsCancellationRequested)
                _log($"{_owner}: forwarding its stdin to the guest stopped: {e.Message}");
        }
        finally
        {
            await input.DisposeAsync().ConfigureAwait(false); // the pump's writes fail from now on: it stops
            _stdinPump?.Stop();
        }
    }

    private static FileStream OutputStream(int fd) => new(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, bufferSize: 0);
}
