from django.core.management.base import BaseCommand

from people import clustering


class Command(BaseCommand):
    help = ("Cluster every face into people again (after a threshold change, or to start over): "
            "named persons, hidden persons and the owner's faces stay as they are.")

    def handle(self, *args, **options):
        result = clustering.recluster()
        self.stdout.write(
            f"{result['faces']} faces clustered again ({result['released']} released from unnamed persons): "
            f"{result['assigned']} in a person, {result['persons']} persons with faces"
        )
