using Containerd.Events;
using Google.Protobuf;

namespace Sandbox.Shim.Events;

/// <summary>A task event: its topic, the bare type URL containerd 1.6 resolves, and the message.</summary>
public sealed record ContainerdEvent(string Topic, string TypeUrl, IMessage Message)
{
    public static ContainerdEvent Of(TaskCreate e) => new("/tasks/create", "containerd.events.TaskCreate", e);

    public static ContainerdEvent Of(TaskStart e) => new("/tasks/start", "containerd.events.TaskStart", e);

    public static ContainerdEvent Of(TaskExit e) => new("/tasks/exit", "containerd.events.TaskExit", e);

    public static ContainerdEvent Of(TaskDelete e) => new("/tasks/delete", "containerd.events.TaskDelete", e);

    public static ContainerdEvent Of(TaskExecAdded e) => new("/tasks/exec-added", "containerd.events.TaskExecAdded", e);

    public static ContainerdEvent Of(TaskExecStarted e) => new("/tasks/exec-started", "containerd.events.TaskExecStarted", e);

    public static ContainerdEvent Of(TaskPaused e) => new("/tasks/paused", "containerd.events.TaskPaused", e);

    public static ContainerdEvent Of(TaskResumed e) => new("/tasks/resumed", "containerd.events.TaskResumed", e);

    public static ContainerdEvent Of(TaskOOM e) => new("/tasks/oom", "containerd.events.TaskOOM", e);

    public static ContainerdEvent Of(TaskCheckpointed e) => new("/tasks/checkpointed", "containerd.events.TaskCheckpointed", e);
}

/// <summary>Publishes task events to containerd, in the order they are given.</summary>
public interface IEventPublisher
{
    /// <summary>Queues the event; never blocks on containerd.</summary>
    void Publish(ContainerdEvent containerdEvent);

    /// <summary>Waits until every queued event was delivered (or given up on), for at most <paramref name="timeout"/>.</summary>
    Task FlushAsync(TimeSpan timeout);
}
