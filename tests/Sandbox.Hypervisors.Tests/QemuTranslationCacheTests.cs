using Sandbox.Hypervisors;
using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Tests;

public sealed class QemuTranslationCacheTests
{
    [Fact]
    public async Task A_clone_gets_the_clone_translation_cache_and_every_other_vm_the_booted_one()
    {
        await using var adapter = new QemuAdapter(new QemuAdapterOptions { TcgTranslationCacheMiB = 24, CloneTcgTranslationCacheMiB = 72 });
        Assert.Equal(72, adapter.TcgTranslationCacheFor(new VmTemplateRole.CloneOf("/t/state", 7)));
        Assert.Equal(24, adapter.TcgTranslationCacheFor(new VmTemplateRole.Source()));
        Assert.Equal(24, adapter.TcgTranslationCacheFor(null));
    }
}
