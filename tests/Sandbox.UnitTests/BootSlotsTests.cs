using System.Diagnostics;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.UnitTests;

public sealed class BootSlotsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("boot-slots-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task The_slot_after_the_last_waits_until_one_is_released()
    {
        var slots = new BootSlots(_directory, 2);
        using var first = await slots.AcquireAsync(null, CancellationToken.None);
        var second = await slots.AcquireAsync(null, CancellationToken.None);
        Assert.NotEqual(first.Number, second.Number);

        int waitingCalls = 0;
        var third = slots.AcquireAsync(() => Interlocked.Increment(ref waitingCalls), CancellationToken.None);
        await Task.Delay(400);
        Assert.False(third.IsCompleted, "a third boot must wait while both slots are held");
        Assert.Equal(1, waitingCalls);

        second.Dispose();
        using var taken = await third.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(second.Number, taken.Number);
        Assert.Equal(1, waitingCalls);
    }

    [Fact]
    public async Task A_slot_held_by_another_process_is_not_taken_and_is_free_once_that_process_is_gone()
    {
        var slots = new BootSlots(_directory, 1);
        // flock(1) holds slot 0 the way another shim would, until it is killed
        var holder = Process.Start(new ProcessStartInfo("flock", [Path.Combine(_directory, "slot-0.lock"), "sleep", "600"]))!;
        try
        {
            await Task.Delay(500);
            using var early = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => slots.AcquireAsync(null, early.Token));
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
            await holder.WaitForExitAsync();
        }
        using var slot = await slots.AcquireAsync(null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, slot.Number);
    }

    [Fact]
    public void At_least_one_slot()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BootSlots(_directory, 0));
    }
}
