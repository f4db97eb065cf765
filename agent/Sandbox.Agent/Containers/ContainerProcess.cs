using Sandbox.Agent.Native;

namespace Sandbox.Agent.Containers;

/// <summary>One process of a container (its init, exec id "", or an exec): stdio, pid and exit.</summary>
public sealed class ContainerProcess(string containerId, string execId, ProcessStdio stdio)
{
    private readonly TaskCompletionSource<ChildExit> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string ContainerId => containerId;
    public string ExecId => execId;
    public ProcessStdio Stdio => stdio;
    public int Pid { get; private set; }
    public bool HasExited => _exit.Task.IsCompleted;
    public Task<ChildExit> Exited => _exit.Task;

    public string Name => execId.Length == 0 ? $"init process of container {containerId}" : $"exec {execId} of container {containerId}";

    /// <summary>Binds the process to its guest pid and the reaper's notice of its exit.</summary>
    public void Attach(int pid, Task<ChildExit> exited)
    {
        Pid = pid;
        exited.ContinueWith(t => _exit.TrySetResult(t.Result), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }
}
