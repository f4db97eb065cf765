using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Sandbox.Native;
using Sandbox.Shim.Backend;
using Sandbox.Shim.Cli;
using Sandbox.Shim.Events;
using Sandbox.Shim.Native;
using Sandbox.Shim.Rootfs;
using Sandbox.Shim.SandboxApi;
using Sandbox.Shim.Start;
using Sandbox.Shim.Tasks;
using Sandbox.Ttrpc;
using static Sandbox.Native.LibCSupplement;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Daemon;

/// <summary>
/// The long-running shim (no action): serves containerd.task.v2.Task on its socket until containerd's Shutdown
/// finds no container left, or SIGTERM/SIGINT. For the runc backend it is a child subreaper that reaps every child
/// (container processes are re-parented to it); the VM backend's children (QEMU) are reaped by .NET. It ignores SIGPIPE, writes its log to &lt;bundle&gt;/log, publishes events to $TTRPC_ADDRESS and removes its socket
/// when it exits. Between bursts of work it gives its garbage back to the system (<see cref="IdleMemoryTrimmer"/>).
/// </summary>
public static class ShimDaemon
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan EventFlushTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ResponseGrace = TimeSpan.FromSeconds(2);

    public static async Task<int> RunAsync(ShimFlags flags, ShimLog log)
    {
        string bundle = flags.Bundle.Length > 0 ? flags.Bundle : Environment.CurrentDirectory;
        RedirectStderrToBundleLog(bundle);

        IgnoreSigpipe();

        var listener = TakeListener(flags, log);
        string socketPath = flags.Socket;
        string ttrpcAddress = Environment.GetEnvironmentVariable("TTRPC_ADDRESS") ?? "";
        var context = new ShimContext(flags.Namespace, flags.Address, ttrpcAddress, bundle,
            Environment.GetEnvironmentVariable(StartCommand.ConfigPathVariable), flags.Debug, log.Info);

        var terminate = new TaskCompletionSource<PosixSignal>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; terminate.TrySetResult(c.Signal); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; terminate.TrySetResult(c.Signal); });

        await using var events = new TtrpcEventPublisher(ttrpcAddress, flags.Namespace, log.Warn);
        TtrpcServer? server = null;
        TaskService? service = null;
        try
        {
            var factory = SandboxBackendCatalog.Select();
            if (factory.NeedsChildSubreaper)
                BecomeChildSubreaper(log);
            var backend = factory.Create(context);
            var sandboxes = new SandboxApiService(backend as IPodSandboxBackend, factory.Name, log.Info);
            service = new TaskService(backend, events, new LinuxRootfsMounter(), log.Warn) { HoldsSandbox = () => sandboxes.HoldsSandbox };
            var registry = new TtrpcServiceRegistry();
            service.RegisterOn(registry, TaskService.ServiceName);
            service.RegisterOn(registry, TaskService.ServiceNameV3);
            sandboxes.RegisterOn(registry);
            server = new TtrpcServer(registry, new TtrpcServerOptions { Log = log.Warn });
            server.Start(listener);
            log.Info($"serving {TaskService.ServiceName}, {TaskService.ServiceNameV3} and {SandboxApiService.ServiceName} on {socketPath} with the {factory.Name} backend");
            using var trimmer = new IdleMemoryTrimmer(log.Debug);
            var idleExit = factory.IdleExit(context);
            var runningServer = server;
            using var stopWatching = new CancellationTokenSource();
            var lost = new IdleShimWatch(() => service.ContainerCount == 0 && !sandboxes.HoldsSandbox && runningServer.ActiveRequests == 0, idleExit)
                .WaitAsync(stopWatching.Token);

            var finished = await Task.WhenAny(service.ShutdownRequested, sandboxes.ShutdownRequested, terminate.Task, lost).ConfigureAwait(false);
            stopWatching.Cancel();
            if (finished == lost)
                log.Warn($"no container, no sandbox and no request for {idleExit.TotalSeconds:0.###} s ([runtime] idle_exit): containerd has lost this shim " +
                         "(it restarted while the shim was starting, or stopped between a delete and the shutdown); exiting");
            else if (finished == terminate.Task)
                log.Info($"{terminate.Task.Result} received: stopping {service.ContainerCount} container(s) and exiting");
            else if (finished == sandboxes.ShutdownRequested)
                log.Info($"containerd shut the sandbox down (ShutdownSandbox): stopping {service.ContainerCount} container(s) and exiting");
            else
                log.Info("containerd asked to shut down and no container is left: exiting");
        }
        catch (Exception e)
        {
            log.Error($"the shim daemon failed: {e}");
            return 1;
        }
        finally
        {
            // The socket goes first: a daemon killed while it stops its VM (which takes a while) left the socket file
            // behind, and containerd had already removed the bundle whose address file would have let `delete` find it
            // (issue 15's soak: kill -9 of the shim 0.24 s into `task rm`). Connections already open keep working.
            if (socketPath.Length > 0)
                File.Delete(socketPath);
            if (service is not null)
            {
                using var stopTimeout = new CancellationTokenSource(StopTimeout);
                await service.StopAllAsync(stopTimeout.Token).ConfigureAwait(false);
            }
            await events.FlushAsync(EventFlushTimeout).ConfigureAwait(false);
            if (server is not null)
                await server.ShutdownAsync(ResponseGrace).ConfigureAwait(false);
            else
                listener.Dispose();
        }
        return 0;
    }

    /// <summary>Container processes that runc leaves behind become this process's children; reap every child from now on.</summary>
    private static void BecomeChildSubreaper(ShimLog log)
    {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
            log.Warn($"cannot become a child subreaper ({Errno.DescribeLast()}): container exits may be missed");
        _ = ChildProcessReaper.Shared;
    }

    /// <summary>The listening socket: fd 3 from `start`, or a new one on -socket.</summary>
    private static Socket TakeListener(ShimFlags flags, ShimLog log)
    {
        if (Environment.GetEnvironmentVariable(StartCommand.ListenFdVariable) is { Length: > 0 } fdText)
        {
            Environment.SetEnvironmentVariable(StartCommand.ListenFdVariable, null);
            int fd = int.Parse(fdText, CultureInfo.InvariantCulture);
            // dup2 in `start` cleared close-on-exec: without it every child (QEMU, vhost-device-vsock) would keep the
            // socket listening after this daemon dies, and `delete` would take the dead daemon for a live one
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            return new Socket(new SafeSocketHandle(fd, ownsHandle: true));
        }
        if (flags.Socket.Length == 0)
            throw new ShimUsageException("the shim daemon needs -socket PATH (or a listening socket from `start`)");
        if (File.Exists(flags.Socket))
        {
            log.Info($"removing the existing socket file {flags.Socket}");
            File.Delete(flags.Socket);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(flags.Socket)!);
        return TtrpcServer.ListenUnix(flags.Socket);
    }

    /// <summary>
    /// stderr → &lt;bundle&gt;/log, the FIFO containerd reads the shim's log from (opened O_WRONLY, as containerd's
    /// own shims do; non-blocking open so a missing reader cannot hang the daemon). Without it stderr stays as is.
    /// </summary>
    /// <summary>A write to a pipe whose reader is gone (a FIFO containerd closed) fails with EPIPE instead of killing the shim.</summary>
    private static unsafe void IgnoreSigpipe()
    {
        var ignore = new Tmds.Linux.sigaction { sa_handler = SIG_IGN };
        Tmds.Linux.LibC.sigaction(SIGPIPE, &ignore, null);
    }

    private static void RedirectStderrToBundleLog(string bundle)
    {
        string path = Path.Combine(bundle, "log");
        if (!File.Exists(path))
            return;
        int fd = LibCStrings.open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0);
        if (fd < 0)
            return; // ENXIO: nobody reads the FIFO (containerd restarted); keep stderr
        FileDescriptors.SetNonBlocking(fd, nonBlocking: false);
        dup2(fd, 2);
        close(fd);
    }
}
