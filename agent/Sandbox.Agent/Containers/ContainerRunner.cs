using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json;
using Sandbox.Agent.Native;
using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Containers;

/// <summary>
/// The containers of the guest, run by crun. A container is created with "crun create" (its init waits on crun's
/// exec fifo) and started with "crun start"; execs use "crun exec --detach". crun exits right after each, so every
/// container process ends up a child of the agent (PID 1, or a child subreaper on a host), which reaps it and
/// reports the exact status (exit code, or 128+signal).
/// crun's console sockets (a terminal's pty master comes over one) live in <paramref name="consoleSocketDirectory"/>
/// under short numbered names, not in the bundle: a Unix socket path has 108 bytes, and a bundle path with CRI's
/// 64-character ids plus "exec-N.console.sock" is longer.
/// </summary>
public sealed class ContainerRunner(CrunRunner crun, string containersDirectory, string consoleSocketDirectory)
{
    private readonly Dictionary<string, Container?> _containers = new(StringComparer.Ordinal); // null = being created
    private long _execFileCounter;
    private long _consoleSocketCounter;

    /// <summary>A fresh console socket path, as short as the directory allows ("&lt;dir&gt;/7.sock").</summary>
    private string NewConsoleSocketPath()
    {
        Directory.CreateDirectory(consoleSocketDirectory);
        return Path.Combine(consoleSocketDirectory, $"{Interlocked.Increment(ref _consoleSocketCounter)}.sock");
    }

    /// <summary>
    /// crun create. <paramref name="devCore"/>: keep the /dev/core link crun makes (see <see cref="DevCoreLink"/>).
    /// </summary>
    public async Task<int> CreateAsync(string id, byte[] specJson, string rootfsPath, bool terminal, bool stdin, bool devCore,
        CancellationToken cancellationToken)
    {
        ValidateId(id, "container_id");
        JsonObject spec;
        PodMembership pod;
        try
        {
            spec = OciSpecRewriter.ParseConfig(specJson);
            pod = PodMembership.Of(spec);
        }
        catch (InvalidSpecException e)
        {
            throw AgentErrors.InvalidArgument($"container {id}: {e.Message}");
        }
        int? sandboxInitPid = pod.Role == PodRole.Container ? PodSandboxInitPid(id, pod) : null;
        RewrittenConfig config;
        try
        {
            config = OciSpecRewriter.RewriteConfig(spec, rootfsPath, terminal, sandboxInitPid);
        }
        catch (InvalidSpecException e)
        {
            throw AgentErrors.InvalidArgument($"container {id}: {e.Message}");
        }
        lock (_containers)
        {
            if (!_containers.TryAdd(id, null)) throw AgentErrors.AlreadyExists($"container {id} already exists");
        }

        string bundle = Path.Combine(containersDirectory, id);
        ProcessStdio? stdio = null;
        bool created = false;
        try
        {
            if (Directory.Exists(bundle)) Directory.Delete(bundle, recursive: true);
            Directory.CreateDirectory(bundle);
            await File.WriteAllTextAsync(Path.Combine(bundle, "config.json"), config.Json, cancellationToken);
            // The VM is the pod's network namespace: its net.* sysctls are the VM's (crun has no network namespace to set them in).
            await GuestSysctls.ApplyAsync(config.NetworkSysctls, $"container {id}", cancellationToken);
            stdio = terminal ? ProcessStdio.CreateTerminal(NewConsoleSocketPath()) : ProcessStdio.CreatePipes(stdin);
            string pidFile = Path.Combine(bundle, "init.pid");
            string logFile = crun.NewLogFile();
            var args = crun.CommandLine.Create(logFile, id, bundle, pidFile, stdio.ConsoleSocketPath);
            int pid = await RunStartingCommandAsync(args, logFile, stdio, pidFile, $"create container {id}", cancellationToken);
            if (!devCore)
                DevCoreLink.RemoveFrom(pid, $"container {id}");

            var init = new ContainerProcess(id, "", stdio);
            init.Attach(pid, ChildProcesses.Shared.Adopt(pid, DateTime.MinValue));
            lock (_containers) _containers[id] = new Container(id, bundle, init, pod) { Cgroup = ContainerCgroup.Of(pid) };
            created = true;
            return pid;
        }
        catch (CrunFailedException e)
        {
            throw AgentErrors.Internal(e.Message);
        }
        catch (IOException e)
        {
            throw AgentErrors.Internal($"create container {id}: {e.Message}");
        }
        finally
        {
            if (!created)
            {
                stdio?.Dispose();
                TryDeleteDirectory(bundle);
                lock (_containers) _containers.Remove(id);
            }
        }
    }

    /// <summary>
    /// The guest pid of the init of the pod sandbox container that an application container joins: the container created
    /// in this VM with io.kubernetes.cri.container-type=sandbox and the same io.kubernetes.cri.sandbox-id (normally
    /// also its container id). Its /proc/PID/ns/* are the pod's namespaces.
    /// </summary>
    private int PodSandboxInitPid(string id, PodMembership pod)
    {
        Container? sandbox;
        lock (_containers)
        {
            sandbox = _containers.Values.OfType<Container>()
                .FirstOrDefault(c => c.Pod.Role == PodRole.Sandbox && c.Pod.SandboxId == pod.SandboxId)
                ?? (_containers.TryGetValue(pod.SandboxId, out Container? byId) ? byId : null);
        }
        if (sandbox == null)
            throw AgentErrors.FailedPrecondition($"container {id}: its pod sandbox {pod.SandboxId} (annotation {PodMembership.SandboxIdAnnotation}) is not a container in this VM; create the sandbox container first");
        if (sandbox.Pod.Role != PodRole.Sandbox)
            throw AgentErrors.FailedPrecondition($"container {id}: container {sandbox.Id} is not a pod sandbox (its spec lacks {PodMembership.ContainerTypeAnnotation}=sandbox), so there are no pod namespaces to join");
        if (sandbox.Init.HasExited)
            throw AgentErrors.FailedPrecondition($"container {id}: the init of pod sandbox container {sandbox.Id} has exited, so the pod's namespaces are gone");
        return sandbox.Init.Pid;
    }

    public async Task<int> StartAsync(string id, CancellationToken cancellationToken)
    {
        Container container = Get(id);
        await container.Lifecycle.WaitAsync(cancellationToken);
        try
        {
            if (container.State != ContainerState.Created)
                throw AgentErrors.FailedPrecondition($"container {id} is {container.State.ToString().ToLowerInvariant()}, not created: it can be started once");
            await RunChecked(l => crun.CommandLine.Start(l, id), $"start container {id}", cancellationToken);
            container.State = ContainerState.Running;
            return container.Init.Pid;
        }
        finally
        {
            container.Lifecycle.Release();
        }
    }

    public async Task<int> ExecAsync(string id, string execId, byte[] processJson, bool terminal, bool stdin, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(execId)) throw AgentErrors.InvalidArgument($"exec_id is empty (container {id})");
        Container container = Get(id);
        string processText;
        try
        {
            processText = OciSpecRewriter.RewriteProcess(processJson, terminal);
        }
        catch (InvalidSpecException e)
        {
            throw AgentErrors.InvalidArgument($"exec {execId} in container {id}: {e.Message}");
        }
        await container.Lifecycle.WaitAsync(cancellationToken);
        ContainerProcess? process = null;
        bool started = false;
        string fileStem = Path.Combine(container.BundleDirectory, $"exec-{Interlocked.Increment(ref _execFileCounter)}");
        try
        {
            if (container.State != ContainerState.Running)
                throw AgentErrors.FailedPrecondition($"container {id} is {container.State.ToString().ToLowerInvariant()}: exec needs a running container");
            var stdio = terminal ? ProcessStdio.CreateTerminal(NewConsoleSocketPath()) : ProcessStdio.CreatePipes(stdin);
            process = new ContainerProcess(id, execId, stdio);
            if (!container.TryReserveExec(execId, process))
            {
                stdio.Dispose();
                process = null;
                throw AgentErrors.AlreadyExists($"exec {execId} already exists in container {id}");
            }
            string processFile = fileStem + ".json";
            await File.WriteAllTextAsync(processFile, processText, cancellationToken);
            string pidFile = fileStem + ".pid";
            string logFile = crun.NewLogFile();
            var args = crun.CommandLine.Exec(logFile, id, processFile, pidFile, stdio.ConsoleSocketPath);
            DateTime spawned = DateTime.UtcNow;
            int pid = await RunStartingCommandAsync(args, logFile, stdio, pidFile, $"exec {execId} in container {id}", cancellationToken);
            process.Attach(pid, ChildProcesses.Shared.Adopt(pid, spawned));
            started = true;
            return pid;
        }
        catch (CrunFailedException e)
        {
            throw AgentErrors.Internal(e.Message);
        }
        catch (IOException e)
        {
            throw AgentErrors.Internal($"exec {execId} in container {id}: {e.Message}");
        }
        finally
        {
            if (!started && process != null)
            {
                container.RemoveExec(execId);
                process.Stdio.Dispose();
            }
            TryDeleteFile(fileStem + ".json");
            TryDeleteFile(fileStem + ".pid");
            container.Lifecycle.Release();
        }
    }

    /// <summary>Runs crun create / exec --detach with the process's stdio and returns the pid from the pid file.</summary>
    private async Task<int> RunStartingCommandAsync(List<string> args, string logFile, ProcessStdio stdio, string pidFile, string what, CancellationToken cancellationToken)
    {
        using var terminalCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task? receiveTerminal = stdio.Terminal ? stdio.ReceiveTerminalAsync(terminalCancellation.Token) : null;
        CrunResult result;
        try
        {
            result = await crun.RunAsync(args, logFile, (stdio.ChildStdin, stdio.ChildStdout, stdio.ChildStderr), cancellationToken);
        }
        finally
        {
            stdio.CloseChildEnds();
        }
        if (!result.Succeeded)
        {
            terminalCancellation.Cancel();
            if (receiveTerminal != null) await Task.WhenAny(receiveTerminal);
            throw new CrunFailedException(CrunRunner.FailureMessage(what, result));
        }
        if (receiveTerminal != null)
        {
            terminalCancellation.CancelAfter(TimeSpan.FromSeconds(10));
            try
            {
                await receiveTerminal;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new CrunFailedException($"{what}: crun succeeded but sent no terminal on the console socket");
            }
        }
        string pidText = File.Exists(pidFile) ? (await File.ReadAllTextAsync(pidFile, cancellationToken)).Trim() : "";
        if (!int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid <= 0)
            throw new CrunFailedException($"{what}: crun succeeded but wrote no pid to {pidFile}");
        return pid;
    }

    public async Task RemoveAsync(string id, bool force, CancellationToken cancellationToken)
    {
        Container container = Get(id);
        await container.Lifecycle.WaitAsync(cancellationToken);
        try
        {
            ContainerState state = container.State;
            if (!force && state is ContainerState.Running or ContainerState.Paused)
                throw AgentErrors.FailedPrecondition($"container {id} is {state.ToString().ToLowerInvariant()}: stop it first or remove with force");
            await RunChecked(l => crun.CommandLine.Delete(l, id, force || state == ContainerState.Created), $"delete container {id}", cancellationToken);
            // crun delete killed what was left; let the reaper collect the init before its stdio goes away.
            await Task.WhenAny(container.Init.Exited, Task.Delay(TimeSpan.FromSeconds(5), cancellationToken));
            Forget(container);
        }
        finally
        {
            container.Lifecycle.Release();
        }
    }

    /// <summary>
    /// Removes every container before the VM powers off (DestroySandbox). One that has exited and whose cgroup is
    /// empty (its init and everything it started are gone) is only forgotten: `crun delete` would remove crun's record
    /// of it and its empty cgroup, which go with the VM, and would cost a crun run (30-50 ms under TCG in a clone) in
    /// the last container's delete, which containerd waits for. Any other container is deleted with SIGKILL, so that
    /// nothing of it holds the share DestroySandbox unmounts next. Errors are collected, not thrown one by one.
    /// </summary>
    public async Task<List<string>> RemoveAllBeforePowerOffAsync(CancellationToken cancellationToken)
    {
        var errors = new List<string>();
        List<Container> all;
        lock (_containers) all = _containers.Values.OfType<Container>().ToList();
        foreach (Container container in all)
        {
            try
            {
                if (container.State == ContainerState.Stopped && container.Cgroup?.IsKnownEmpty() == true)
                {
                    await container.Lifecycle.WaitAsync(cancellationToken);
                    try { Forget(container); }
                    finally { container.Lifecycle.Release(); }
                    continue;
                }
                await RemoveAsync(container.Id, force: true, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                errors.Add($"container {container.Id}: {e.Message}");
                Forget(container);
            }
        }
        return errors;
    }

    private void Forget(Container container)
    {
        foreach (ContainerProcess process in container.AllProcesses()) process.Stdio.Dispose();
        TryDeleteDirectory(container.BundleDirectory);
        lock (_containers) _containers.Remove(container.Id);
    }

    public async Task PauseAsync(string id, CancellationToken cancellationToken)
    {
        Container container = Get(id);
        await container.Lifecycle.WaitAsync(cancellationToken);
        try
        {
            if (container.State != ContainerState.Running)
                throw AgentErrors.FailedPrecondition($"container {id} is {container.State.ToString().ToLowerInvariant()}: only a running container can be paused");
            await RunChecked(l => crun.CommandLine.Pause(l, id), $"pause container {id}", cancellationToken);
            container.State = ContainerState.Paused;
        }
        finally
        {
            container.Lifecycle.Release();
        }
    }

    public async Task ResumeAsync(string id, CancellationToken cancellationToken)
    {
        Container container = Get(id);
        await container.Lifecycle.WaitAsync(cancellationToken);
        try
        {
            if (container.State != ContainerState.Paused)
                throw AgentErrors.FailedPrecondition($"container {id} is {container.State.ToString().ToLowerInvariant()}, not paused");
            await RunChecked(l => crun.CommandLine.Resume(l, id), $"resume container {id}", cancellationToken);
            container.State = ContainerState.Running;
        }
        finally
        {
            container.Lifecycle.Release();
        }
    }

    /// <summary>`crun update --resources` with the shim's LinuxResources JSON, written next to the bundle.</summary>
    public async Task UpdateAsync(string id, byte[] resourcesJson, CancellationToken cancellationToken)
    {
        Container container = Get(id);
        await container.Lifecycle.WaitAsync(cancellationToken);
        try
        {
            if (container.State == ContainerState.Stopped)
                throw AgentErrors.FailedPrecondition($"update container {id}: it has exited; only a created, running or paused container's limits can change");
            string file = Path.Combine(container.BundleDirectory, "update-resources.json");
            await File.WriteAllBytesAsync(file, resourcesJson, cancellationToken);
            try
            {
                await RunChecked(l => crun.CommandLine.Update(l, id, file), $"update the limits of container {id}", cancellationToken);
            }
            finally
            {
                File.Delete(file);
            }
        }
        finally
        {
            container.Lifecycle.Release();
        }
    }

    public async Task<List<uint>> ListPidsAsync(string id, CancellationToken cancellationToken)
    {
        Container container = Get(id);
        if (container.State == ContainerState.Stopped) return [];
        CrunResult result = await RunChecked(l => crun.CommandLine.ListPids(l, id), $"list processes of container {id}", cancellationToken);
        return ParsePidList(result.Stdout, id);
    }

    public static List<uint> ParsePidList(string json, string id)
    {
        try
        {
            var pids = new List<uint>();
            if (JsonNode.Parse(json) is JsonArray array)
            {
                foreach (JsonNode? node in array)
                {
                    if (node != null) pids.Add(node.GetValue<uint>());
                }
                return pids;
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException) { }
        throw AgentErrors.Internal($"list processes of container {id}: crun ps printed no JSON pid list: {json}");
    }

    public async Task SignalAsync(string id, string execId, int signal, bool all, CancellationToken cancellationToken)
    {
        if (signal <= 0 || signal > 64) throw AgentErrors.InvalidArgument($"signal {signal} is not a valid signal number (1-64)");
        Container container = Get(id);
        if (all)
        {
            if (container.State == ContainerState.Stopped) throw AgentErrors.NotFound($"container {id} has already exited");
            await RunChecked(l => crun.CommandLine.Kill(l, id, signal, all: true), $"signal {signal} to all processes of container {id}", cancellationToken);
            return;
        }
        ContainerProcess process = GetProcess(container, execId);
        if (process.Pid == 0) throw AgentErrors.FailedPrecondition($"{process.Name} has not been started");
        if (process.HasExited) throw AgentErrors.NotFound($"{process.Name} has already exited");
        int errno = ChildProcesses.Shared.Signal(process.Pid, signal);
        if (errno == ESRCH) throw AgentErrors.NotFound($"{process.Name} has already exited");
        if (errno != 0) throw AgentErrors.Internal($"kill({process.Pid}, {signal}) for {process.Name} failed: {Errno.Describe(errno)}");
    }

    public ContainerProcess GetProcess(string id, string execId) => GetProcess(Get(id), execId);

    private static ContainerProcess GetProcess(Container container, string execId) =>
        container.TryGetProcess(execId, out var process)
            ? process
            : throw AgentErrors.NotFound($"exec {execId} not found in container {container.Id}");

    public Container Get(string id)
    {
        lock (_containers)
        {
            if (_containers.TryGetValue(id, out Container? container) && container != null) return container;
        }
        throw AgentErrors.NotFound($"container {id} not found");
    }

    private async Task<CrunResult> RunChecked(Func<string, List<string>> build, string what, CancellationToken cancellationToken)
    {
        try
        {
            return await crun.RunCheckedAsync(build, what, cancellationToken);
        }
        catch (CrunFailedException e)
        {
            throw AgentErrors.Internal(e.Message);
        }
        catch (IOException e)
        {
            throw AgentErrors.Internal($"{what}: {e.Message}");
        }
    }

    /// <summary>Ids become directory and crun names: letters, digits, '_', '-', '.', not starting with '.'.</summary>
    public static void ValidateId(string id, string field)
    {
        if (string.IsNullOrEmpty(id)) throw AgentErrors.InvalidArgument($"{field} is empty");
        if (id.Length > 128 || id[0] == '.' || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
            throw AgentErrors.InvalidArgument($"{field} '{id}' is invalid: use 1-128 letters, digits, '_', '-' or '.', not starting with '.'");
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static void TryDeleteFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException) { }
    }
}
